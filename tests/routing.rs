//! Every matcher and rewrite, through a real banyan to real backends.

#![allow(clippy::unwrap_used)]

mod common;
use common::*;

async fn two_backends() -> (Backend, Backend) {
    (Backend::start("legacy").await, Backend::start("new").await)
}

fn upstreams(legacy: &Backend, new: &Backend) -> String {
    format!(
        "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n[upstreams.new]\nendpoints = [\"{}\"]\n",
        legacy.url(),
        new.url()
    )
}

/// A config with one route to `new`, with the given match, and the default to legacy.
async fn one_route(match_toml: &str) -> (banyan::server::Running, Backend, Backend) {
    let (legacy, new) = two_backends().await;
    let text = format!(
        "{}\n[[routes]]\nname = \"r\"\nmatch = {match_toml}\naction = \"forward\"\nupstream = \"new\"\n",
        upstreams(&legacy, &new)
    );
    (banyan(&text).await, legacy, new)
}

async fn lands(b: &banyan::server::Running, path: &str, headers: &[(&str, &str)]) -> String {
    let got = get(b.proxy_addr, path, headers).await;
    assert_eq!(got.status, 200, "{path}: {}", got.text());
    got.backend().unwrap_or("none").to_string()
}

#[tokio::test]
async fn path_matchers() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "{ path = { exact = \"/a\" } }",
            &[("/a", "new"), ("/a/", "legacy"), ("/ab", "legacy")],
        ),
        (
            "{ path = { prefix = \"/api/\" } }",
            &[("/api/x/y", "new"), ("/api/", "new"), ("/api", "legacy")],
        ),
        (
            "{ path = { template = \"/items/{id}\" } }",
            &[
                ("/items/42", "new"),
                ("/items/42/x", "legacy"),
                ("/items", "legacy"),
            ],
        ),
        (
            "{ path = { template = \"/static/{*rest}\" } }",
            &[("/static/css/app.css", "new"), ("/stat", "legacy")],
        ),
        (
            "{ path = { regex = \"/v[0-9]+/orders/[0-9]+\" } }",
            &[
                ("/v2/orders/17", "new"),
                ("/v2/orders/x", "legacy"),
                ("/x/v2/orders/1", "legacy"),
            ],
        ),
    ];
    for (m, expectations) in cases {
        let (b, _l, _n) = one_route(m).await;
        for (path, want) in *expectations {
            assert_eq!(lands(&b, path, &[]).await, *want, "{m} on {path}");
        }
        b.shutdown().await;
    }
}

#[tokio::test]
async fn host_method_header_query_cookie_matchers() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a [(&'a str, &'a str)], &'a str)]);
    let cases: &[Case] = &[
        (
            "{ hosts = [\"shop.example\", \"*.api.example\"] }",
            &[
                ("/", &[("host", "shop.example")], "new"),
                ("/", &[("host", "SHOP.example:8080")], "new"),
                ("/", &[("host", "eu.api.example")], "new"),
                ("/", &[("host", "api.example")], "legacy"),
                ("/", &[("host", "other.example")], "legacy"),
            ],
        ),
        (
            "{ headers = [{ name = \"x-beta\", present = true }] }",
            &[("/", &[("x-beta", "")], "new"), ("/", &[], "legacy")],
        ),
        (
            "{ headers = [{ name = \"x-beta\", present = false }] }",
            &[("/", &[("x-beta", "1")], "legacy"), ("/", &[], "new")],
        ),
        (
            "{ headers = [{ name = \"x-tenant\", equals = \"acme\" }] }",
            &[
                ("/", &[("x-tenant", "acme")], "new"),
                ("/", &[("x-tenant", "acme2")], "legacy"),
            ],
        ),
        (
            "{ headers = [{ name = \"user-agent\", regex = \".*Mobile.*\" }] }",
            &[
                ("/", &[("user-agent", "X Mobile Y")], "new"),
                ("/", &[("user-agent", "Desktop")], "legacy"),
            ],
        ),
        (
            "{ query = [{ name = \"v\", equals = \"2\" }] }",
            &[
                ("/s?a=1&v=2", "new"),
                ("/s?v=3", "legacy"),
                ("/s", "legacy"),
            ]
            .map(|(p, w)| (p, &[][..], w)),
        ),
        (
            "{ query = [{ name = \"q\", regex = \"red .*\" }] }",
            &[
                ("/s?q=red%20shoes", &[], "new"),
                ("/s?q=blue", &[], "legacy"),
            ],
        ),
        (
            "{ cookies = [{ name = \"beta\", equals = \"on\" }] }",
            &[
                ("/", &[("cookie", "a=1; beta=on")], "new"),
                ("/", &[("cookie", "beta=off")], "legacy"),
                ("/", &[], "legacy"),
            ],
        ),
    ];
    for (m, expectations) in cases {
        let (b, _l, _n) = one_route(m).await;
        for (path, headers, want) in *expectations {
            assert_eq!(
                lands(&b, path, headers).await,
                *want,
                "{m} on {path} {headers:?}"
            );
        }
        b.shutdown().await;
    }
}

#[tokio::test]
async fn methods_match() {
    let (b, _l, _n) = one_route("{ methods = [\"POST\", \"PUT\"] }").await;
    let c = client();
    let url = format!("http://{}/x", b.proxy_addr);
    for (method, want) in [
        ("POST", "new"),
        ("PUT", "new"),
        ("GET", "legacy"),
        ("DELETE", "legacy"),
    ] {
        let got = send(&c, method, &url, &[], "body").await;
        assert_eq!(got.backend(), Some(want), "{method}");
    }
}

#[tokio::test]
async fn first_match_wins_among_many_routes() {
    let (legacy, new) = two_backends().await;
    let third = Backend::start("third").await;
    let text = format!(
        r#"{}
[upstreams.third]
endpoints = ["{}"]

[[routes]]
name = "beta-api"
match = {{ path = {{ prefix = "/api/" }}, headers = [{{ name = "x-beta", equals = "1" }}] }}
action = "forward"
upstream = "third"

[[routes]]
name = "api"
match = {{ path = {{ prefix = "/api/" }} }}
action = "forward"
upstream = "new"

[[routes]]
name = "item"
match = {{ path = {{ template = "/api/items/{{id}}" }} }}
action = "forward"
upstream = "third"
"#,
        upstreams(&legacy, &new),
        third.url()
    );
    let b = banyan(&text).await;
    assert_eq!(lands(&b, "/api/items/1", &[("x-beta", "1")]).await, "third");
    assert_eq!(lands(&b, "/api/items/1", &[]).await, "new");
    assert_eq!(lands(&b, "/other", &[]).await, "legacy");
}

#[tokio::test]
async fn rewrites_path_and_headers_keeping_the_query() {
    let (legacy, new) = two_backends().await;
    let text = format!(
        r#"{}
[[routes]]
name = "products"
match = {{ path = {{ template = "/items/{{id}}/reviews/{{*rest}}" }} }}
action = "forward"
upstream = "new"
rewrite = {{ template = "/v2/products/{{id}}/r/{{rest}}", set_headers = {{ "x-migrated" = "yes" }}, remove_headers = ["x-debug"] }}

[[routes]]
name = "api"
match = {{ path = {{ prefix = "/api/v1/" }} }}
action = "forward"
upstream = "new"
rewrite = {{ prefix = "/internal/" }}
"#,
        upstreams(&legacy, &new)
    );
    let b = banyan(&text).await;
    get(
        b.proxy_addr,
        "/items/42/reviews/page/2?sort=new",
        &[("x-debug", "1"), ("x-migrated", "no")],
    )
    .await;
    get(b.proxy_addr, "/api/v1/orders?id=7", &[]).await;
    let seen = new.requests();
    assert_eq!(seen[0].uri.to_string(), "/v2/products/42/r/page/2?sort=new");
    assert_eq!(seen[0].headers["x-migrated"], "yes");
    assert!(seen[0].headers.get("x-debug").is_none());
    assert_eq!(seen[1].uri.to_string(), "/internal/orders?id=7");
}

/// Routes match the raw path by default; with `path_normalization = "standard"`, encoded
/// unreserved characters, doubled slashes and dot segments cannot slip a request past a
/// route, and the upstream gets the normalized path.
#[tokio::test]
async fn path_normalization_keeps_requests_on_their_route() {
    let (legacy, admin_svc) = (
        Backend::start("legacy").await,
        Backend::start("admin").await,
    );
    let routes = |server: &str| {
        format!(
            "default = \"legacy\"\n[upstreams.legacy]\nendpoints = [\"{}\"]\n[upstreams.admin]\nendpoints = [\"{}\"]\n\
             [[routes]]\nname = \"admin\"\nmatch = {{ path = {{ exact = \"/api/admin\" }} }}\naction = \"forward\"\nupstream = \"admin\"\n\
             [server]\nlisten = \"127.0.0.1:0\"\n{server}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
            legacy.url(),
            admin_svc.url()
        )
    };
    let corpus = [
        "/api/%61dmin",
        "/api/%61%64%6D%69%6e",
        "//api/admin",
        "/api//admin",
        "/x/../api/admin",
        "/./api/./admin",
        "/x/%2e%2e/api/admin",
    ];
    let raw = banyan::server::start(config(&routes(""))).await.unwrap();
    for path in corpus {
        let got = get(raw.proxy_addr, path, &[]).await;
        assert_eq!(
            got.backend(),
            Some("legacy"),
            "raw matching is the default: {path}"
        );
    }
    let standard = banyan::server::start(config(&routes("path_normalization = \"standard\"")))
        .await
        .unwrap();
    let before = admin_svc.count();
    for path in corpus {
        let got = get(standard.proxy_addr, &format!("{path}?q=1"), &[]).await;
        assert_eq!(got.backend(), Some("admin"), "{path}");
    }
    let seen = admin_svc.requests();
    assert_eq!(seen.len() - before, corpus.len());
    for s in &seen[before..] {
        assert_eq!(s.uri.to_string(), "/api/admin?q=1");
    }
    // An encoded slash is left encoded by default, refused when the config says so.
    let kept = get(standard.proxy_addr, "/files/a%2fb", &[]).await;
    assert_eq!(kept.status, 200);
    assert_eq!(legacy.requests().last().unwrap().uri.path(), "/files/a%2Fb");
    let refusing = banyan::server::start(config(&routes(
        "path_normalization = \"standard\"\nencoded_slash = \"refuse\"",
    )))
    .await
    .unwrap();
    let refused = get(refusing.proxy_addr, "/files/a%2Fb", &[]).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.header("x-banyan-error"), Some("bad_request"));
}
