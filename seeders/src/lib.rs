//! Seeding through the services' public gRPC APIs (never by writing their tables), so every
//! seeded row respects the same invariants as real traffic. The seeder authenticates with a
//! short-lived service token signed with its own key (`JWT_KEY_ID` `seeder`).

pub mod bench;
pub mod bench_stats;
pub mod demo;

use std::time::Duration;

use anyhow::Context;
use platform::auth::TokenIssuer;
use proto::role::v1::role_service_client::RoleServiceClient;
use proto::role::v1::{AssignRoleRequest, UserRolesRequest};
use proto::user::v1::user_service_client::UserServiceClient;
use proto::user::v1::{CreateUserRequest, ListUsersRequest};

/// Where the services are and how to sign.
#[derive(Clone, Debug)]
pub struct Target {
    pub user_service_url: String,
    pub role_service_url: String,
    pub jwt: platform::auth::JwtConfig,
}

impl Target {
    /// From `USER_SERVICE_URL`, `ROLE_SERVICE_URL` and the `JWT_*` variables.
    pub fn from_env() -> anyhow::Result<Self> {
        use platform::config::optional;
        Ok(Self {
            user_service_url: optional("USER_SERVICE_URL", &platform::ports::USER.local_url()),
            role_service_url: optional("ROLE_SERVICE_URL", &platform::ports::ROLE.local_url()),
            jwt: platform::auth::JwtConfig::from_env("seeder")?,
        })
    }
}

/// Result of [`ensure_admin`].
#[derive(Debug, PartialEq, Eq)]
pub enum AdminOutcome {
    Created(String),
    AlreadyExisted(String),
}

/// Makes sure an account with `email` exists (verified, with `password` if it is created)
/// and holds the admin role. Safe to run any number of times.
///
/// It only ever promotes an account it creates itself. An existing account with the admin
/// email that is not an admin already was made by someone else (anyone can register any
/// address, or change theirs to it): promoting it would hand the platform to them, so the
/// seeder refuses loudly instead.
pub async fn ensure_admin(
    target: &Target,
    email: &str,
    password: &str,
) -> anyhow::Result<AdminOutcome> {
    let token = TokenIssuer::new(&target.jwt)?.service_token(&[
        "users.read",
        "users.write",
        "roles.assign",
        "roles.read",
    ])?;
    let bearer = Some(token.token.expose().as_str());
    let deadline = Duration::from_secs(10);
    let mut users = UserServiceClient::new(platform::grpc::channel(&target.user_service_url)?);
    let mut roles = RoleServiceClient::new(platform::grpc::channel(&target.role_service_url)?);

    let created = users
        .create_user(platform::grpc::outgoing(
            CreateUserRequest {
                email: email.to_owned(),
                password: password.to_owned(),
                first_name: "Platform".to_owned(),
                last_name: "Admin".to_owned(),
                email_verified: true,
            },
            bearer,
            deadline,
        ))
        .await;
    let outcome = match created {
        Ok(user) => AdminOutcome::Created(user.into_inner().id),
        Err(status) if status.code() == tonic::Code::AlreadyExists => {
            let page = users
                .list_users(platform::grpc::outgoing(
                    ListUsersRequest {
                        search: email.to_owned(),
                        ..ListUsersRequest::default()
                    },
                    bearer,
                    deadline,
                ))
                .await
                .context("looking up the existing admin")?
                .into_inner();
            let user = page
                .users
                .into_iter()
                .find(|u| u.email.eq_ignore_ascii_case(email))
                .context("the admin email is taken by a trashed account; restore it first")?;
            let roles = roles
                .list_user_roles(platform::grpc::outgoing(
                    UserRolesRequest {
                        user_id: user.id.clone(),
                    },
                    bearer,
                    deadline,
                ))
                .await
                .context("reading the existing account's roles")?
                .into_inner();
            anyhow::ensure!(
                roles.roles.iter().any(|r| r.name == "admin"),
                "refusing to promote {email}: an account with this address exists (id {}) and \
                 is not an admin, so the seeder did not create it; choose another ADMIN_EMAIL, \
                 or delete that account first",
                user.id
            );
            return Ok(AdminOutcome::AlreadyExisted(user.id));
        }
        Err(status) => return Err(anyhow::anyhow!("creating the admin: {status}")),
    };
    let id = match &outcome {
        AdminOutcome::Created(id) | AdminOutcome::AlreadyExisted(id) => id.clone(),
    };
    roles
        .assign_role(platform::grpc::outgoing(
            AssignRoleRequest {
                user_id: id,
                role: "admin".to_owned(),
            },
            bearer,
            deadline,
        ))
        .await
        .map_err(|s| anyhow::anyhow!("assigning the admin role: {s}"))?;
    Ok(outcome)
}
