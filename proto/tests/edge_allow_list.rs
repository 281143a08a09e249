//! The public gRPC port of NGINX forwards exactly the public methods: every method of the
//! protos except `proto::INTERNAL_METHODS`, each to its own service's upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

/// `(method path, upstream)` of every `location ~ ^/pkg\.Service/(A|B)$ { grpc_pass … }`.
fn forwarded() -> Vec<(String, String)> {
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../nginx/nginx.conf.template"
    ))
    .unwrap();
    let mut out = Vec::new();
    let mut lines = template.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        let Some(pattern) = line
            .strip_prefix("location ~ ^/")
            .and_then(|l| l.strip_suffix(")$ {"))
        else {
            assert!(
                !line.starts_with("location /payments"),
                "a prefix location forwards whole services: {line}"
            );
            continue;
        };
        let (service, methods) = pattern.split_once("/(").unwrap();
        let service = service.replace("\\.", ".");
        let upstream = lines
            .next()
            .unwrap()
            .trim()
            .strip_prefix("grpc_pass grpc://")
            .unwrap()
            .trim_end_matches(';')
            .to_owned();
        for method in methods.split('|') {
            out.push((format!("/{service}/{method}"), upstream.clone()));
        }
    }
    out
}

#[test]
fn the_edge_forwards_exactly_the_public_methods() {
    let forwarded = forwarded();
    let listed: BTreeSet<&str> = forwarded.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(listed.len(), forwarded.len(), "a method is listed twice");
    let public: BTreeSet<&str> = proto::METHODS
        .iter()
        .copied()
        .filter(|m| !proto::INTERNAL_METHODS.contains(m))
        .collect();
    assert_eq!(
        listed, public,
        "NGINX's allow-list differs from the protos' public methods"
    );
    for internal in proto::INTERNAL_METHODS {
        assert!(proto::METHODS.contains(internal), "{internal} is no method");
        assert!(!listed.contains(internal), "{internal} is forwarded");
    }
    for (method, upstream) in &forwarded {
        // /payments.<service>.v1.… goes to <service>_grpc.
        let service = method.split('.').nth(1).unwrap();
        assert_eq!(upstream, &format!("{service}_grpc"), "{method}");
    }
}
