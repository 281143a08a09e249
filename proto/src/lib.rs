//! Generated gRPC types and clients/servers for every service, one module per versioned
//! package (`payments.<service>.v1`). Owns no behaviour; services convert these types to their
//! domain types at their edge.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// Encoded `FileDescriptorSet` of every package, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

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

pub mod saldo {
    pub mod v1 {
        tonic::include_proto!("payments.saldo.v1");
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
