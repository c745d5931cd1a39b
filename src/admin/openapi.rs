//! The OpenAPI document served at `/api/openapi.json`: paths, parameters and security from
//! `openapi.json`, and the response schemas of the read endpoints generated from the types
//! their handlers answer with (`views.rs`), so a changed answer changes its description.

use super::views::{FleetView, MigrationView, ReportView, RoutesView, ShadowView, UpstreamsView};
use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Value};
use std::sync::LazyLock;

/// The hand-written part.
const PATHS: &str = include_str!("openapi.json");

static DOCUMENT: LazyLock<String> = LazyLock::new(|| build().to_string());

/// The whole document, built once.
pub fn document() -> &'static str {
    &DOCUMENT
}

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

fn build() -> Value {
    let mut settings = SchemaSettings::openapi3();
    // The types are written, never read: an optional field is always present, as null.
    settings.contract = Contract::Serialize;
    let mut generator = settings.into_generator();
    let responses = [
        ("/api/routes", schema_of::<RoutesView>(&mut generator)),
        ("/api/shadow", schema_of::<ShadowView>(&mut generator)),
        ("/api/migration", schema_of::<MigrationView>(&mut generator)),
        ("/api/upstreams", schema_of::<UpstreamsView>(&mut generator)),
        ("/api/fleet", schema_of::<FleetView>(&mut generator)),
        (
            "/api/migration/report",
            schema_of::<ReportView>(&mut generator),
        ),
    ];
    // A parse failure of the embedded file is caught by every test that reads the document.
    let mut doc: Value = serde_json::from_str(PATHS).unwrap_or_else(|_| json!({}));
    for (path, schema) in responses {
        if let Some(ok) = doc.pointer_mut(&format!("/paths/{}/get/responses/200", escape(path))) {
            ok["content"]["application/json"]["schema"] = schema;
        }
    }
    let definitions = generator.take_definitions(true);
    doc["components"]["schemas"] = Value::Object(definitions);
    doc
}

/// A path as one JSON pointer token.
fn escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_endpoints_are_described_by_their_types() {
        let doc: Value = serde_json::from_str(document()).expect("the document is JSON");
        for (path, name) in [
            ("/api/routes", "RoutesView"),
            ("/api/shadow", "ShadowView"),
            ("/api/migration", "MigrationView"),
            ("/api/upstreams", "UpstreamsView"),
            ("/api/fleet", "FleetView"),
            ("/api/migration/report", "ReportView"),
        ] {
            let pointer = format!(
                "/paths/{}/get/responses/200/content/application~1json/schema/$ref",
                escape(path)
            );
            assert_eq!(
                doc.pointer(&pointer).and_then(Value::as_str),
                Some(format!("#/components/schemas/{name}").as_str()),
                "{path}"
            );
        }
        let route = &doc["components"]["schemas"]["RouteView"];
        let required: Vec<&str> = route["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(required.contains(&"match"), "{required:?}");
        assert!(
            required.contains(&"circuit_breaker"),
            "always present, as null"
        );
        assert_eq!(
            doc["components"]["securitySchemes"],
            serde_json::from_str::<Value>(PATHS).expect("json")["components"]["securitySchemes"],
            "the hand-written components stay"
        );
    }
}
