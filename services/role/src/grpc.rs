//! The gRPC layer of the role service.

use platform::pagination::{LifecycleFilter, Page};
use proto::common::v1::BulkResult;
use proto::role::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::RoleError;
use crate::repo::RoleRow;
use crate::service::{RoleInput, Roles};

/// Implements `RoleService`.
#[derive(Clone)]
pub struct Handlers {
    roles: Roles,
}

impl Handlers {
    pub fn new(roles: Roles) -> Self {
        Self { roles }
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<platform::auth::Principal, Status> {
        Ok(self.roles.authenticator().require(request).await?)
    }
}

fn role_to_proto(role: RoleRow) -> pb::Role {
    pb::Role {
        id: role.id.to_string(),
        name: role.name,
        description: role.description,
        permissions: role.permissions,
        system: role.is_system,
        created_at: Some(platform::time::to_proto(role.created_at)),
        updated_at: Some(platform::time::to_proto(role.updated_at)),
        deleted_at: platform::time::to_proto_opt(role.deleted_at),
    }
}

fn parse_id(raw: &str) -> Result<Uuid, RoleError> {
    raw.parse()
        .map_err(|_| platform::FieldViolation::new("id", "must be a UUID").into())
}

fn user_roles(user_id: String, roles: Vec<RoleRow>) -> pb::UserRoles {
    pb::UserRoles {
        user_id,
        roles: roles.into_iter().map(role_to_proto).collect(),
    }
}

#[tonic::async_trait]
impl pb::role_service_server::RoleService for Handlers {
    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let input = RoleInput {
            name: Some(r.name),
            description: Some(r.description),
            permissions: Some(r.permissions),
        };
        Ok(Response::new(role_to_proto(
            self.roles.create(&caller, input).await?,
        )))
    }

    async fn update_role(
        &self,
        request: Request<pb::UpdateRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let id = parse_id(&r.id)?;
        let input = RoleInput {
            name: r.name,
            description: r.description,
            permissions: r.permissions.map(|p| p.permissions),
        };
        Ok(Response::new(role_to_proto(
            self.roles.update(&caller, id, input).await?,
        )))
    }

    async fn get_role(
        &self,
        request: Request<pb::RoleIdRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_id(&request.into_inner().id)?;
        Ok(Response::new(role_to_proto(
            self.roles.get(&caller, id).await?,
        )))
    }

    async fn list_roles(
        &self,
        request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let page = Page::from_proto(r.page.as_ref()).map_err(RoleError::from)?;
        let (roles, total) = self
            .roles
            .list(
                &caller,
                LifecycleFilter::from_proto(r.lifecycle),
                &r.search,
                page,
            )
            .await?;
        Ok(Response::new(pb::ListRolesResponse {
            roles: roles.into_iter().map(role_to_proto).collect(),
            page_info: Some(page.info(total)),
        }))
    }

    async fn trash_role(
        &self,
        request: Request<pb::RoleIdRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_id(&request.into_inner().id)?;
        Ok(Response::new(role_to_proto(
            self.roles.set_trashed(&caller, id, true).await?,
        )))
    }

    async fn restore_role(
        &self,
        request: Request<pb::RoleIdRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_id(&request.into_inner().id)?;
        Ok(Response::new(role_to_proto(
            self.roles.set_trashed(&caller, id, false).await?,
        )))
    }

    async fn delete_role_permanently(
        &self,
        request: Request<pb::RoleIdRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_id(&request.into_inner().id)?;
        self.roles.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteRoleResponse {}))
    }

    async fn restore_all_roles(
        &self,
        request: Request<pb::RestoreAllRolesRequest>,
    ) -> Result<Response<BulkResult>, Status> {
        let caller = self.caller(&request).await?;
        Ok(Response::new(BulkResult {
            affected: self.roles.restore_all(&caller).await?,
        }))
    }

    async fn delete_all_trashed_roles(
        &self,
        request: Request<pb::DeleteAllTrashedRolesRequest>,
    ) -> Result<Response<BulkResult>, Status> {
        let caller = self.caller(&request).await?;
        Ok(Response::new(BulkResult {
            affected: self.roles.delete_all_trashed(&caller).await?,
        }))
    }

    async fn list_permissions(
        &self,
        request: Request<pb::ListPermissionsRequest>,
    ) -> Result<Response<pb::ListPermissionsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let permissions = self
            .roles
            .permissions(&caller)
            .await?
            .into_iter()
            .map(|(name, description)| pb::Permission { name, description })
            .collect();
        Ok(Response::new(pb::ListPermissionsResponse { permissions }))
    }

    async fn assign_role(
        &self,
        request: Request<pb::AssignRoleRequest>,
    ) -> Result<Response<pb::UserRoles>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let roles = self.roles.assign(&caller, &r.user_id, &r.role).await?;
        Ok(Response::new(user_roles(r.user_id, roles)))
    }

    async fn revoke_role(
        &self,
        request: Request<pb::RevokeRoleRequest>,
    ) -> Result<Response<pb::UserRoles>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let roles = self.roles.revoke(&caller, &r.user_id, &r.role).await?;
        Ok(Response::new(user_roles(r.user_id, roles)))
    }

    async fn list_user_roles(
        &self,
        request: Request<pb::UserRolesRequest>,
    ) -> Result<Response<pb::UserRoles>, Status> {
        let caller = self.caller(&request).await?;
        let user_id = request.into_inner().user_id;
        let roles = self.roles.user_roles(&caller, &user_id).await?;
        Ok(Response::new(user_roles(user_id, roles)))
    }

    async fn get_user_grants(
        &self,
        request: Request<pb::UserRolesRequest>,
    ) -> Result<Response<pb::UserGrants>, Status> {
        let caller = self.caller(&request).await?;
        let user_id = request.into_inner().user_id;
        let (roles, permissions) = self.roles.grants(&caller, &user_id).await?;
        Ok(Response::new(pb::UserGrants {
            user_id,
            roles,
            permissions,
        }))
    }
}
