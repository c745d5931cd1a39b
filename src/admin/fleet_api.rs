//! `GET /api/fleet`: this instance's link to the fleet and every instance's heartbeat.

use super::respond::{error, json};
use super::views::FleetView;
use crate::body::ResponseBody;
use crate::fleet::Fleet;
use http::{Response, StatusCode};

pub async fn fleet(fleet: Option<&Fleet>) -> Response<ResponseBody> {
    let Some(fleet) = fleet else {
        return error(
            StatusCode::NOT_FOUND,
            "this banyan runs alone: no [fleet] table in its config",
        );
    };
    let state = fleet.state();
    // The instances come from PostgreSQL; when it is away, say so and show what this
    // instance knows.
    let (instances, query_error) = match fleet.instances().await {
        Ok(rows) => (rows, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let view = FleetView {
        instance: fleet.instance.clone(),
        connected: state.connected && query_error.is_none(),
        last_error: query_error.or(state.last_error),
        config_version: state.config_version,
        config_error: state.config_error,
        heartbeat_seconds: fleet.settings.heartbeat.as_secs_f64(),
        leader: fleet.is_leader(),
        instances,
    };
    json(StatusCode::OK, &view)
}
