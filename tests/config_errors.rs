//! Every kind of invalid config is refused with the line it is on and a plain sentence;
//! an unreachable route is a warning.

#![allow(clippy::unwrap_used)]

mod common;
use banyan::config::{Config, ConfigError, Source};

const UPSTREAMS: &str = r#"
[upstreams.legacy]
endpoints = ["http://127.0.0.1:8001"]
[upstreams.new]
endpoints = ["http://127.0.0.1:8002"]
"#;

/// Each case: the config (the bad line marked `# HERE`) and a phrase the error must hold.
fn cases() -> Vec<(String, &'static str)> {
    let route = |body: &str| {
        format!("default = \"legacy\"\n{UPSTREAMS}\n[[routes]]\nname = \"r\"\n{body}\n")
    };
    vec![
        ("default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"http://x:1\" \"http://y:1\"] # HERE\n".to_string(), "expected"),
        ("default = = \"legacy\" # HERE\n".to_string(), "expected"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\nlisten = 1 # HERE\n"), "unknown field"),
        ("default = \"legacy\"\n[upstreams.legacy]\nendpoint = [\"http://x:1\"] # HERE\n".to_string(), "unknown field `endpoint`"),
        (format!("default = \"monolith\" # HERE\n{UPSTREAMS}"), "not defined"),
        (route("action = \"forward\"\nupstream = \"itemz\" # HERE"), "\"itemz\", which is not defined"),
        (route("action = \"split\"\nsplit = { to = \"nope\", percent = 5, key = \"client_ip\" } # HERE"), "\"nope\", which is not defined"),
        (route("action = \"forward\"\nupstream = \"new\"\nfallback = \"gone\" # HERE"), "\"gone\", which is not defined"),
        (route("match = { path = { regex = \"/items/(\" } } # HERE\naction = \"forward\"\nupstream = \"new\""), "does not compile"),
        (route("match = { headers = [{ name = \"x\", regex = \"[\" }] } # HERE\naction = \"forward\"\nupstream = \"new\""), "bad regex"),
        (route("action = \"split\"\nsplit = { to = \"new\", percent = 101, key = \"client_ip\" } # HERE"), "outside 0-100"),
        (route("action = \"split\"\nsplit = { to = \"new\", percent = -1, key = \"client_ip\" } # HERE"), "outside 0-100"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[[routes]]\nname = \"r\"\naction = \"forward\"\nupstream = \"new\"\n[[routes]]\nname = \"r\" # HERE\naction = \"forward\"\nupstream = \"new\"\n"), "used twice"),
        (route("match = { path = { template = \"/items/{id\" } } # HERE\naction = \"forward\"\nupstream = \"new\""), "template"),
        (route("match = { path = { template = \"/items/{id}\" } }\naction = \"forward\"\nupstream = \"new\"\nrewrite = { template = \"/v2/{sku}\" } # HERE"), "does not capture"),
        (route("match = { path = { exact = \"/a\" } }\naction = \"forward\"\nupstream = \"new\"\nrewrite = { prefix = \"/b/\" } # HERE"), "needs the route to match a path prefix"),
        ("default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"127.0.0.1:8001\"] # HERE\n".to_string(), "scheme"),
        ("default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"http://127.0.0.1:8001/api\"] # HERE\n".to_string(), "has a path"),
        ("default = \"legacy\"\n[upstreams.legacy]\nendpoints = [] # HERE\n".to_string(), "no endpoints"),
        ("default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"http://a:1\"]\nconnect_timeout = \"soon\" # HERE\n".to_string(), "not a duration"),
        (route("action = \"split\" # HERE\nupstream = \"legacy\""), "no split table"),
        (route("action = \"forward\" # HERE"), "names no upstream"),
        (route("action = \"teleport\" # HERE\nupstream = \"new\""), "unknown variant"),
        (route("match = { headers = [{ name = \"x\", present = true, equals = \"1\" }] } # HERE\naction = \"forward\"\nupstream = \"new\""), "exactly one of"),
        (route("match = { methods = [\"get\"] } # HERE\naction = \"forward\"\nupstream = \"new\""), "upper case"),
        (route("match = { grpc = { service = \"shop Items\" } } # HERE\naction = \"forward\"\nupstream = \"new\""), "is not a service name"),
        (route("match = { grpc = { service = \"shop.Items\", method = \"Get/x\" } } # HERE\naction = \"forward\"\nupstream = \"new\""), "is not a method name"),
        (route("match = { path = { prefix = \"/a\" }, grpc = { service = \"shop.Items\" } } # HERE\naction = \"forward\"\nupstream = \"new\""), "give no path or methods beside it"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[server]\nlisten = \"localhost\" # HERE\n"), "not an address"),
        (route("action = \"split\"\nsplit = { to = \"legacy\", percent = 5, key = \"client_ip\" } # HERE"), "already its base"),
        (route("action = \"forward\"\nupstream = \"legacy\"\ncircuit_breaker = { probes = 2 } # HERE"), "sends its traffic to legacy already"),
        (route("action = \"forward\"\nupstream = \"new\"\ncircuit_breaker = { error_rate = 1.5 } # HERE"), "error_rate must be a fraction"),
        (route("action = \"forward\"\nupstream = \"new\"\nmax_body = 0 # HERE"), "max_body must be a number of bytes above 0"),
        ("default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"http://a:1\"]\nretries = 9 # HERE\n".to_string(), "retries must be 0 to 5"),
        ("default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"http://a:1\"]\noutlier_detection = { max_ejected_percent = 101 } # HERE\n".to_string(), "max_ejected_percent"),
        ("default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"https://a:1\"]\nca_file = \"/nonexistent/ca.pem\" # HERE\n".to_string(), "ca_file"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[server]\nmax_header_bytes = 100 # HERE\n"), "at least 8192"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[server]\nidle_timeout = \"0s\" # HERE\n"), "more than zero"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[server]\nmax_concurrent_streams = 0 # HERE\n"), "max_concurrent_streams must be a whole number above 0"),
        (route("action = \"migrate\" # HERE"), "no migration table"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[server]\nmax_connections = 0 # HERE\n"), "max_connections must be a whole number above 0"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[server]\npath_normalization = \"envoy\" # HERE\n"), "is not known"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[server]\nencoded_slash = \"decode\" # HERE\n"), "is not known"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[shadow]\nredact_names = [\"$.ssn\"] # HERE\n"), "is not a name"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[shadow]\nredact_exempt = [\"session\"] # HERE\n"), "is not a field"),
        (route("action = \"forward\"\nupstream = \"new\"\nupgrades = [\"websocket\", \"h2c\"] # HERE"), "upgrades are never tunnelled"),
        (route("action = \"forward\"\nupstream = \"new\"\nallow_methods = [\"DELETE\"] # HERE"), "allow_methods takes \"CONNECT\" and \"TRACE\""),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[access_log]\nformat = \"clf\" # HERE\n"), "\"json\" or \"combined\""),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[access_log]\npath = \"/nonexistent-dir/access.log\" # HERE\n"), "does not exist"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[access_log]\nmax_size = 1000 # HERE\n"), "max_size rotates a file"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[access_log]\npath = \"/tmp/a.log\"\nbuffer = 0 # HERE\n"), "buffer must be a whole number above 0"),
        (route("action = \"forward\"\nupstream = \"new\"\naccess_log = { percent = 150 } # HERE"), "access_log.percent 150 is outside 0-100"),
        (route("action = \"forward\"\nupstream = \"new\"\ncapture = { percent = 101 } # HERE"), "capture.percent 101 is outside 0-100"),
        (route("action = \"forward\"\nupstream = \"new\"\ncapture = { percent = 1, max_body = \"12 parsecs\" } # HERE"), "capture.max_body must be a size above 0"),
        (route("action = \"forward\"\nupstream = \"new\"\ncapture = { percent = 1, methods = [\"get\"] } # HERE"), "capture method \"get\" is not an HTTP method in upper case"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[capture]\nmax_total = 0 # HERE\n"), "capture.max_total must be a size above 0"),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[capture]\nmax_file_age = \"soon\" # HERE\n"), "is not a duration"),
        (route("action = \"shadow\"\nupstream = \"legacy\"\nshadow = { to = \"new\" }\ncompare = { case_insensitive_keys = [\"headers\"] } # HERE"), "is not a field path"),
        (route("action = \"shadow\"\nupstream = \"legacy\"\nshadow = { to = \"new\" }\ncompare = { allow_extra = [\"items\"] } # HERE"), "compare.allow_extra"),
        (route("action = \"shadow\"\nupstream = \"legacy\"\nshadow = { to = \"new\" }\ncompare = { ignore = [\"div >\"] } # HERE"), "is not a CSS selector"),
        (route("action = \"shadow\"\nupstream = \"legacy\"\nshadow = { to = \"new\" }\ncompare = { ignore = [\"input[name=\"] } # HERE"), "write a field ($.field"),
        (route("action = \"migrate\"\nmigration = { stage = \"beta\", new = \"new\" } # HERE"), "is not one of legacy, shadow, canary, new, retired"),
        (route("action = \"migrate\"\nmigration = { stage = \"shadow\", new = \"legacy\" } # HERE"), "is its legacy upstream too"),
        (route("action = \"migrate\"\nmigration = { stage = \"shadow\", new = \"new\" }\nramp = { steps = [10, 100] } # HERE"), "a ramp moves the canary stage"),
        (route("action = \"migrate\"\nmigration = { stage = \"canary\", new = \"new\" }\nramp = { steps = [50, 10, 100] } # HERE"), "rising percentages"),
        (route("action = \"migrate\"\nmigration = { stage = \"canary\", new = \"new\", percent = 5 } # HERE\nramp = { steps = [10, 100] }"), "remove percent"),
        (route("action = \"migrate\"\nmigration = { stage = \"canary\", new = \"new\" }\nramp = { steps = [10, 100], max_latency_factor = 0.5 } # HERE"), "max_latency_factor must be 1 or more"),
        (route("action = \"migrate\"\nmigration = { stage = \"canary\", new = \"new\" }\nramp = { steps = [10, 100], latency_quantile = \"p95\" } # HERE"), "latency_quantile is p50, p90 or p99"),
        (route("action = \"migrate\"\nmigration = { stage = \"canary\", new = \"new\" }\nramp = { steps = [10, 100], confidence = 1.0 } # HERE"), "confidence is a fraction from 0.5"),
        (route("action = \"migrate\"\nmigration = { stage = \"canary\", new = \"new\" }\nramp = { steps = [10, 100], failure_limit = 0 } # HERE"), "failure_limit must be a whole number above 0"),
        (route("action = \"migrate\"\nmigration = { stage = \"canary\", new = \"new\" }\nramp = { steps = [10, 100], max_error_rate = 2 } # HERE"), "max_error_rate must be a fraction"),
        (route("action = \"migrate\"\nmigration = { stage = \"new\", new = \"new\" }\nshadow = { to = \"legacy\" } # HERE"), "its stage decides where copies go"),
        (route("action = \"shadow\"\nshadow = { percent = 5 } # HERE"), "needs to = "),
        (format!("default = \"legacy\"\n{UPSTREAMS}\n[server.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [] # HERE\n"), "at least one certificate"),
    ]
}

fn marked_line(text: &str) -> usize {
    text.lines()
        .position(|l| l.contains("# HERE"))
        .expect("case marks its line")
        + 1
}

#[test]
fn every_invalid_config_is_refused_with_its_line() {
    for (text, phrase) in cases() {
        let errors = match Config::parse(&Source::new("bad.toml", text.as_str())) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(ConfigError::Invalid(errors)) => errors,
            Err(e) => panic!("{e}"),
        };
        let want_line = marked_line(&text);
        assert!(
            errors.iter().any(|d| d.line == want_line && d.file == "bad.toml" && d.column >= 1 && d.message.contains(phrase)),
            "expected an error on line {want_line} containing {phrase:?}, got {errors:#?}\n---\n{text}"
        );
    }
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = format!(
        "default = \"legacy\"\n{UPSTREAMS}\n[[routes]]\nname = \"a\"\naction = \"forward\"\nupstream = \"x\"\n[[routes]]\nname = \"b\"\naction = \"forward\"\nupstream = \"y\"\n"
    );
    let err = Config::parse(&Source::new("bad.toml", text)).unwrap_err();
    assert_eq!(err.diagnostics().len(), 2, "{err}");
    let rendered = err.to_string();
    assert!(
        rendered.contains("bad.toml:11:12: error: route \"a\""),
        "{rendered}"
    );
    assert!(
        rendered.contains("bad.toml:15:12: error: route \"b\""),
        "{rendered}"
    );
}

#[test]
fn an_unreachable_route_is_a_warning_with_its_line() {
    let text = format!(
        "default = \"legacy\"\n{UPSTREAMS}
[[routes]]
name = \"api\"
match = {{ path = {{ prefix = \"/api/\" }} }}
action = \"forward\"
upstream = \"new\"

[[routes]]
name = \"items\" # HERE
match = {{ methods = [\"GET\"], path = {{ template = \"/api/items/{{id}}\" }} }}
action = \"forward\"
upstream = \"legacy\"

[[routes]]
name = \"other\"
match = {{ path = {{ prefix = \"/ap\" }} }}
action = \"forward\"
upstream = \"legacy\"
"
    );
    let config =
        Config::parse(&Source::new("w.toml", text.as_str())).expect("warnings do not refuse");
    assert_eq!(config.warnings.len(), 1, "{:#?}", config.warnings);
    let w = &config.warnings[0];
    assert_eq!(w.line, marked_line(&text));
    assert!(
        w.message
            .contains("\"items\" is unreachable: route \"api\""),
        "{}",
        w.message
    );
}
