//! The `/metrics` listener (`ELECTRIC_PROMETHEUS_PORT`), served by core 0 with the same HTTP
//! server as the API: `GET`/`HEAD /metrics` answers the Prometheus text, every other path 404.

use super::render::{render, Info};
use crate::app::{Shared, Status};
use crate::http::{self, Method, Request, Response, ResponseFuture};
use bytes::Bytes;
use std::rc::Rc;
use std::sync::Arc;

/// The handler for the metrics port.
pub fn handler(shared: Arc<Shared>) -> Rc<dyn http::Handler> {
    Rc::new(move |req: Request| -> ResponseFuture {
        let response = answer(&shared, &req);
        Box::pin(async move { response })
    })
}

fn answer(shared: &Shared, req: &Request) -> Response {
    if req.path() != "/metrics" {
        return Response::json(404, Bytes::from_static(br#"{"message":"Not found"}"#));
    }
    if !matches!(req.method, Method::Get | Method::Head) {
        return Response::json(
            405,
            Bytes::from_static(br#"{"message":"Method not allowed"}"#),
        )
        .with_header("allow", "GET, HEAD".to_string());
    }
    let driver = shared.config.io_driver.to_string();
    let text = render(
        &shared.metrics,
        &Info {
            io_driver: &driver,
            version: env!("CARGO_PKG_VERSION"),
            active: shared.status() == Status::Active,
        },
    );
    Response::new(200)
        .with_header(
            "content-type",
            "text/plain; version=0.0.4; charset=utf-8".to_string(),
        )
        .with_header("cache-control", "no-store".to_string())
        .with_body(http::Body::Full(Bytes::from(text)))
}
