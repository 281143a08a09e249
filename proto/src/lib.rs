//! Generated gRPC types and clients/servers for every service, one module per versioned
//! package (`payments.<service>.v1`). Owns no behaviour; services convert these types to their
//! domain types at their edge.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// Encoded `FileDescriptorSet` of every package, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// Every gRPC method of the platform's services, as its HTTP/2 path
/// (`/payments.user.v1.AuthService/Login`), sorted.
pub const METHODS: &[&str] = include!(concat!(env!("OUT_DIR"), "/methods.rs"));

/// Methods only the platform's services call one another with. The public gRPC port
/// (NGINX) never forwards them: its allow-list is [`METHODS`] without these, which a test
/// holds the NGINX template to.
pub const INTERNAL_METHODS: &[&str] = &[
    // Ledger postings: only the movement and payment services move money.
    "/payments.saldo.v1.SaldoService/Post",
    // Holds (authorizations): only the transaction service places, captures and releases them.
    "/payments.saldo.v1.SaldoService/Hold",
    "/payments.saldo.v1.SaldoService/CaptureHold",
    "/payments.saldo.v1.SaldoService/ReleaseHold",
    // CVV checks: only the transaction service, which counts failures per card and key.
    "/payments.card.v1.CardService/VerifyCvv",
    // API-key authentication: the gateway and the transaction service resolve keys.
    "/payments.merchant.v1.MerchantService/AuthenticateApiKey",
    // A user's grants: the user service, when it signs an access token.
    "/payments.role.v1.RoleService/GetUserGrants",
    // Provider callbacks: only the gateway relays them, from their HTTP endpoint.
    "/payments.provider.v1.ProviderCallbackService/Receive",
    // Operator adjustments: through the gateway's admin routes only.
    "/payments.saldo.v1.SaldoService/Adjust",
    "/payments.saldo.v1.SaldoService/ListAdjustments",
    // Settlement reconciliation: operators use the gateway's admin routes.
    "/payments.provider.v1.ReconciliationService/Reconcile",
    "/payments.provider.v1.ReconciliationService/ListExceptions",
    "/payments.provider.v1.ReconciliationService/ResolveException",
];

/// Methods of the standard gRPC services every server offers (health, reflection).
pub const STANDARD_METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

pub mod common {
    pub mod v1 {
        tonic::include_proto!("payments.common.v1");
    }
}

pub mod user {
    pub mod v1 {
        tonic::include_proto!("payments.user.v1");
    }
}

pub mod role {
    pub mod v1 {
        tonic::include_proto!("payments.role.v1");
    }
}

pub mod card {
    pub mod v1 {
        tonic::include_proto!("payments.card.v1");
    }
}

pub mod provider {
    pub mod v1 {
        tonic::include_proto!("payments.provider.v1");
    }
}

pub mod saldo {
    pub mod v1 {
        tonic::include_proto!("payments.saldo.v1");

        impl Rejection {
            /// The reason code stored with a failed movement and sent to clients
            /// (`INSUFFICIENT_FUNDS`, …): the enum's name without its prefix.
            pub fn code(self) -> &'static str {
                match self {
                    Self::Unspecified => "UNSPECIFIED",
                    Self::InsufficientFunds => "INSUFFICIENT_FUNDS",
                    Self::AccountClosed => "ACCOUNT_CLOSED",
                    Self::CurrencyMismatch => "CURRENCY_MISMATCH",
                }
            }

            /// The rejection with `code` (as stored), if it is one.
            pub fn from_code(code: &str) -> Option<Self> {
                [
                    Self::InsufficientFunds,
                    Self::AccountClosed,
                    Self::CurrencyMismatch,
                ]
                .into_iter()
                .find(|r| r.code() == code)
            }
        }
    }
}

pub mod topup {
    pub mod v1 {
        tonic::include_proto!("payments.topup.v1");
    }
}

pub mod withdraw {
    pub mod v1 {
        tonic::include_proto!("payments.withdraw.v1");
    }
}

pub mod transfer {
    pub mod v1 {
        tonic::include_proto!("payments.transfer.v1");
    }
}

pub mod merchant {
    pub mod v1 {
        tonic::include_proto!("payments.merchant.v1");
    }
}

pub mod transaction {
    pub mod v1 {
        tonic::include_proto!("payments.transaction.v1");
    }
}

pub mod stats {
    pub mod v1 {
        tonic::include_proto!("payments.stats.v1");
    }
}
