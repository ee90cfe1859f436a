//! The web interface's files, compiled into the binary (no Node toolchain
//! or CDN at run time), and the API's OpenAPI description.

use axum::http::HeaderValue;
use axum::response::{Redirect, Response};

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");
const OPENAPI: &str = include_str!("openapi.json");

/// The interface's own policy: its files only; frames only from here.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn file(body: &'static str, content_type: &'static str) -> Response {
    let mut response = super::guarded(body, content_type, PAGE_POLICY);
    response
        .headers_mut()
        .insert("x-frame-options", HeaderValue::from_static("DENY"));
    response
}

pub async fn index() -> Response {
    file(INDEX, "text/html; charset=utf-8")
}

pub async fn script() -> Response {
    file(SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style() -> Response {
    file(STYLE, "text/css; charset=utf-8")
}

pub async fn openapi() -> Response {
    file(OPENAPI, "application/json")
}

pub async fn home() -> Redirect {
    Redirect::to("/ui/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_description_is_json_and_names_every_route() {
        let spec: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let paths = spec["paths"].as_object().unwrap();
        for route in super::super::ROUTES {
            assert!(paths.contains_key(*route), "{route} is not described");
        }
    }
}
