//! The default ports of every process, in one table: the defaults of `GRPC_ADDR`,
//! `ADMIN_ADDR` and every `<SERVICE>_SERVICE_URL` come from here. Kubernetes and Compose use
//! these defaults (one network namespace per pod); `make run` and the tests, where every
//! process shares loopback, set other ports, because 50051–50060 lie in Linux's ephemeral
//! range (32768–60999) where an outgoing connection can hold one first.

/// The ports of one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// gRPC (0 = the process serves none: the gateway serves HTTP on [`GATEWAY_HTTP`]).
    pub grpc: u16,
    /// Health, readiness and metrics.
    pub admin: u16,
}

impl Ports {
    /// `0.0.0.0:<grpc>`: the default `GRPC_ADDR`.
    pub fn grpc_listen(self) -> String {
        format!("0.0.0.0:{}", self.grpc)
    }

    /// `0.0.0.0:<admin>`: the default `ADMIN_ADDR`.
    pub fn admin_listen(self) -> String {
        format!("0.0.0.0:{}", self.admin)
    }

    /// `http://127.0.0.1:<grpc>`: the default `<SERVICE>_SERVICE_URL` of its clients.
    pub fn local_url(self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }
}

pub const USER: Ports = Ports {
    grpc: 50051,
    admin: 9101,
};
pub const ROLE: Ports = Ports {
    grpc: 50052,
    admin: 9102,
};
pub const CARD: Ports = Ports {
    grpc: 50053,
    admin: 9103,
};
pub const SALDO: Ports = Ports {
    grpc: 50054,
    admin: 9104,
};
pub const TOPUP: Ports = Ports {
    grpc: 50055,
    admin: 9105,
};
pub const TRANSFER: Ports = Ports {
    grpc: 50056,
    admin: 9106,
};
pub const WITHDRAW: Ports = Ports {
    grpc: 50057,
    admin: 9107,
};
pub const MERCHANT: Ports = Ports {
    grpc: 50058,
    admin: 9108,
};
pub const TRANSACTION: Ports = Ports {
    grpc: 50059,
    admin: 9109,
};
pub const EMAIL: Ports = Ports {
    grpc: 50060,
    admin: 9110,
};
pub const GATEWAY: Ports = Ports {
    grpc: 0,
    admin: 9100,
};
/// The gateway's HTTP port.
pub const GATEWAY_HTTP: u16 = 8000;
