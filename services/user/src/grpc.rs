//! The gRPC layer: converts proto messages to use-case calls and results back, and maps
//! errors to statuses. No business rules here.

use platform::pagination::{LifecycleFilter, Page};
use proto::common::v1::BulkResult;
use proto::user::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::UserError;
use crate::repo::UserRow;
use crate::service::{AccountChanges, NewAccount, Session, Users};

/// Implements `AuthService` and `UserService`.
#[derive(Clone)]
pub struct Handlers {
    users: Users,
}

impl Handlers {
    pub fn new(users: Users) -> Self {
        Self { users }
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<platform::auth::Principal, Status> {
        Ok(self.users.authenticator().require(request).await?)
    }
}

fn user_to_proto(user: UserRow) -> pb::User {
    pb::User {
        id: user.id.to_string(),
        email: user.email,
        first_name: user.first_name,
        last_name: user.last_name,
        email_verified: user.email_verified_at.is_some(),
        created_at: Some(platform::time::to_proto(user.created_at)),
        updated_at: Some(platform::time::to_proto(user.updated_at)),
        deleted_at: platform::time::to_proto_opt(user.deleted_at),
    }
}

fn session_to_proto(session: Session) -> pb::TokenPair {
    pb::TokenPair {
        access_token: session.access.token.expose().clone(),
        access_expires_in: u32::try_from(session.access.expires_in.as_secs()).unwrap_or(u32::MAX),
        refresh_token: session.refresh_token.expose().clone(),
        refresh_expires_in: u32::try_from(session.refresh_expires_in.as_secs()).unwrap_or(u32::MAX),
        token_type: "Bearer".to_owned(),
    }
}

fn parse_id(raw: &str) -> Result<Uuid, UserError> {
    raw.parse()
        .map_err(|_| platform::FieldViolation::new("id", "must be a UUID").into())
}

#[tonic::async_trait]
impl pb::auth_service_server::AuthService for Handlers {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let r = request.into_inner();
        self.users
            .register(NewAccount {
                email: &r.email,
                password: &r.password,
                first_name: &r.first_name,
                last_name: &r.last_name,
            })
            .await?;
        // No user in the answer: it would tell a new account from a taken address.
        Ok(Response::new(pb::RegisterResponse { user: None }))
    }

    async fn verify_email(
        &self,
        request: Request<pb::VerifyEmailRequest>,
    ) -> Result<Response<pb::VerifyEmailResponse>, Status> {
        let user = self.users.verify_email(&request.into_inner().token).await?;
        Ok(Response::new(pb::VerifyEmailResponse {
            user: Some(user_to_proto(user)),
        }))
    }

    async fn resend_verification(
        &self,
        request: Request<pb::ResendVerificationRequest>,
    ) -> Result<Response<pb::ResendVerificationResponse>, Status> {
        self.users
            .resend_verification(&request.into_inner().email)
            .await?;
        Ok(Response::new(pb::ResendVerificationResponse {}))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::TokenPair>, Status> {
        let client = platform::grpc::client_address(request.metadata());
        let r = request.into_inner();
        let session = self.users.login(&r.email, &r.password, &client).await?;
        Ok(Response::new(session_to_proto(session)))
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::TokenPair>, Status> {
        let token = request.into_inner().refresh_token;
        if token.is_empty() {
            return Err(UserError::from(platform::FieldViolation::new(
                "refresh_token",
                "is required",
            ))
            .into());
        }
        Ok(Response::new(session_to_proto(
            self.users.refresh(&token).await?,
        )))
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        let caller = self.users.authenticator().optional(&request).await?;
        let r = request.into_inner();
        if r.all_sessions {
            let caller = caller.ok_or(platform::auth::AuthError::Missing)?;
            self.users.logout_everywhere(&caller).await?;
        } else {
            self.users.logout(&r.refresh_token, caller.as_ref()).await?;
        }
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn forgot_password(
        &self,
        request: Request<pb::ForgotPasswordRequest>,
    ) -> Result<Response<pb::ForgotPasswordResponse>, Status> {
        self.users
            .forgot_password(&request.into_inner().email)
            .await?;
        Ok(Response::new(pb::ForgotPasswordResponse {}))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let r = request.into_inner();
        self.users.reset_password(&r.token, &r.new_password).await?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    async fn me(
        &self,
        request: Request<pb::MeRequest>,
    ) -> Result<Response<pb::MeResponse>, Status> {
        let caller = self.caller(&request).await?;
        let user = self.users.me(&caller).await?;
        Ok(Response::new(pb::MeResponse {
            user: Some(user_to_proto(user)),
            roles: caller.roles.into_iter().collect(),
            permissions: caller.permissions.into_iter().collect(),
        }))
    }
}

#[tonic::async_trait]
impl pb::user_service_server::UserService for Handlers {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let user = self
            .users
            .create_user(
                &caller,
                NewAccount {
                    email: &r.email,
                    password: &r.password,
                    first_name: &r.first_name,
                    last_name: &r.last_name,
                },
                r.email_verified,
            )
            .await?;
        Ok(Response::new(user_to_proto(user)))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = self.caller(&request).await?;
        let client = platform::grpc::client_address(request.metadata());
        let r = request.into_inner();
        let id = parse_id(&r.id)?;
        let changes = AccountChanges {
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            password: r.password,
            current_password: r.current_password,
            client_address: client,
        };
        let user = self.users.update_user(&caller, id, changes).await?;
        Ok(Response::new(user_to_proto(user)))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_id(&request.into_inner().id)?;
        Ok(Response::new(user_to_proto(
            self.users.get_user(&caller, id).await?,
        )))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let page = Page::from_proto(r.page.as_ref()).map_err(UserError::from)?;
        let (users, total) = self
            .users
            .list_users(
                &caller,
                LifecycleFilter::from_proto(r.lifecycle),
                &r.search,
                page,
            )
            .await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users.into_iter().map(user_to_proto).collect(),
            page_info: Some(page.info(total)),
        }))
    }

    async fn trash_user(
        &self,
        request: Request<pb::UserIdRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_id(&request.into_inner().id)?;
        Ok(Response::new(user_to_proto(
            self.users.trash_user(&caller, id).await?,
        )))
    }

    async fn restore_user(
        &self,
        request: Request<pb::UserIdRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_id(&request.into_inner().id)?;
        Ok(Response::new(user_to_proto(
            self.users.restore_user(&caller, id).await?,
        )))
    }

    async fn delete_user_permanently(
        &self,
        request: Request<pb::UserIdRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_id(&request.into_inner().id)?;
        self.users.delete_user(&caller, id).await?;
        Ok(Response::new(pb::DeleteUserResponse {}))
    }

    async fn restore_all_users(
        &self,
        request: Request<pb::RestoreAllUsersRequest>,
    ) -> Result<Response<BulkResult>, Status> {
        let caller = self.caller(&request).await?;
        let affected = self.users.restore_all(&caller).await?;
        Ok(Response::new(BulkResult { affected }))
    }

    async fn delete_all_trashed_users(
        &self,
        request: Request<pb::DeleteAllTrashedUsersRequest>,
    ) -> Result<Response<BulkResult>, Status> {
        let caller = self.caller(&request).await?;
        let affected = self.users.delete_all_trashed(&caller).await?;
        Ok(Response::new(BulkResult { affected }))
    }
}
