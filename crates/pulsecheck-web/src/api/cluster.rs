//! `GET /api/v1/cluster`: the answering node's view of the cluster (its id, the live
//! members, and the leases it holds with their fencing epochs). Read-only; each node
//! answers for itself, so asking every node shows who runs what.

use axum::extract::State;
use axum::Json;

use super::error::ApiError;
use crate::auth::ReadAccess;
use crate::control::ClusterView;
use crate::AppState;

pub async fn get(State(app): State<AppState>, _access: ReadAccess) -> Result<Json<ClusterView>, ApiError> {
    let view = app.control().and_then(|control| control.cluster());
    view.map(Json).ok_or_else(|| {
        ApiError::not_found(
            "this node is not part of a cluster: it runs every check itself on its own store; \
             a cluster needs store.url (PostgreSQL) and a cluster: section (see docs/deployment.md)",
        )
    })
}
