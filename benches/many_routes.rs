//! A synthetic config of many routes, shaped like a large monolith's: mostly templates
//! and exact paths, some prefixes, regexes and header conditions, and the route a
//! benchmark aims at last.

/// A config with `n` routes over `upstreams` (name, endpoint) pairs; the first upstream is
/// the default. The last route matches `GET /bench/last/{id}`.
pub fn many_routes(n: usize, upstreams: &[(&str, &str)], listen: &str, admin: &str) -> String {
    let mut out = format!(
        "default = \"{}\"\n[server]\nlisten = \"{listen}\"\n[admin]\nlisten = \"{admin}\"\n",
        upstreams[0].0
    );
    for (name, endpoint) in upstreams {
        out.push_str(&format!(
            "[upstreams.{name}]\nendpoints = [\"{endpoint}\"]\n"
        ));
    }
    let target = |i: usize| upstreams[i % upstreams.len()].0;
    for i in 0..n.saturating_sub(1) {
        let m = match i % 10 {
            0..=4 => format!("{{ methods = [\"GET\"], path = {{ template = \"/svc{i}/items/{{id}}\" }} }}"),
            5 | 6 => format!("{{ path = {{ exact = \"/svc{i}/status\" }} }}"),
            7 => format!("{{ path = {{ prefix = \"/svc{i}/\" }}, headers = [{{ name = \"x-tenant\", equals = \"t{i}\" }}] }}"),
            8 => format!("{{ path = {{ regex = \"/svc{i}/v[0-9]+/orders/[0-9]+\" }} }}"),
            _ => format!("{{ hosts = [\"svc{i}.example.com\"], path = {{ prefix = \"/api/\" }} }}"),
        };
        out.push_str(&format!(
            "\n[[routes]]\nname = \"r{i}\"\nmatch = {m}\naction = \"forward\"\nupstream = \"{}\"\n",
            target(i)
        ));
    }
    out.push_str(&format!(
        "\n[[routes]]\nname = \"last\"\nmatch = {{ methods = [\"GET\"], path = {{ template = \"/bench/last/{{id}}\" }} }}\naction = \"forward\"\nupstream = \"{}\"\n",
        upstreams[upstreams.len() - 1].0
    ));
    out
}
