//! Tests of the auth middleware, driven in-process with `oneshot`.

use super::*;
use axum::body::Body;
use axum::routing::get;
use tower::ServiceExt;

fn hash(pw: &str) -> Secret {
    // Cost 4 keeps the tests fast; production hashes use 10+.
    Secret::new(bcrypt::hash(pw, 4).unwrap())
}

fn app(auth: Authenticator) -> Router {
    let ok = || get(|| async { "ok" });
    RouteGroups {
        open: Router::new().route("/healthz", ok()),
        write: Router::new().route("/api/v1/write", ok()),
        read: Router::new().route("/api/v1/query", ok()),
        admin: Router::new(),
        alerting: Router::new().route("/api/v2/alerts", ok()),
    }
    .into_router(Arc::new(auth))
}

async fn call(app: &Router, path: &str, auth: Option<&str>) -> Response {
    let mut req = Request::get(path);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

#[tokio::test]
async fn unconfigured_groups_are_open_and_health_is_always_open() {
    let mut cfg = AuthConfig::default();
    cfg.write.bearer_tokens.push("w-token".into());
    let app = app(Authenticator::from_config(&cfg, |_| None).unwrap());
    assert_eq!(call(&app, "/api/v1/query", None).await.status(), StatusCode::OK);
    assert_eq!(call(&app, "/healthz", None).await.status(), StatusCode::OK);
    assert_eq!(call(&app, "/api/v1/write", None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, "/nowhere", None).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bearer_tokens_missing_wrong_and_right() {
    let mut cfg = AuthConfig::default();
    cfg.read.bearer_tokens = vec!["t1".into(), "t2".into()];
    let app = app(Authenticator::from_config(&cfg, |_| None).unwrap());
    let r = call(&app, "/api/v1/query", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers().get(header::WWW_AUTHENTICATE).unwrap(), "Bearer realm=\"crowsnest\"");
    let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "unauthorized");
    assert_eq!(call(&app, "/api/v1/query", Some("Bearer nope")).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, "/api/v1/query", Some("Bearer t1x")).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, "/api/v1/query", Some("Bearer t2")).await.status(), StatusCode::OK);
    assert_eq!(call(&app, "/api/v1/query", Some("bearer t1")).await.status(), StatusCode::OK);
    // A token is not a password.
    assert_eq!(call(&app, "/api/v1/query", Some(&basic("x", "t1"))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, "/api/v1/query", Some("Digest abc")).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn basic_auth_checks_bcrypt_and_caches_verdicts() {
    let mut cfg = AuthConfig::default();
    cfg.write.basic_auth_users.insert("alice".into(), hash("wonder"));
    let auth = Arc::new(Authenticator::from_config(&cfg, |_| None).unwrap());
    let app = RouteGroups { write: Router::new().route("/w", get(|| async { "ok" })), ..Default::default() }
        .into_router(auth.clone());
    let r = call(&app, "/w", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(header::WWW_AUTHENTICATE).unwrap().to_str().unwrap().starts_with("Basic realm="));
    assert_eq!(call(&app, "/w", Some(&basic("alice", "wonder"))).await.status(), StatusCode::OK);
    assert_eq!(call(&app, "/w", Some(&basic("alice", "wonder"))).await.status(), StatusCode::OK);
    assert_eq!(call(&app, "/w", Some(&basic("alice", "wrong"))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, "/w", Some(&basic("bob", "wonder"))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, "/w", Some("Basic !!notbase64")).await.status(), StatusCode::UNAUTHORIZED);
    // Three distinct (user, password) pairs were verified, the unknown user against the decoy hash
    // (so its answer takes as long); repeats came from the cache.
    assert_eq!(auth.verdicts.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn tokens_from_files_env_and_the_all_group() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("token");
    std::fs::write(&f, "from-file\n").unwrap();
    let mut cfg = AuthConfig::default();
    cfg.write.bearer_token_files.push(f);
    cfg.all.bearer_tokens.push("everywhere".into());
    let env = |k: &str| match k {
        "CROWSNEST_READ_TOKEN" => Some("from-env".to_string()),
        "CROWSNEST_AUTH_TOKEN" => Some("env-all".to_string()),
        _ => None,
    };
    let app = app(Authenticator::from_config(&cfg, env).unwrap());
    assert_eq!(call(&app, "/api/v1/write", Some("Bearer from-file")).await.status(), StatusCode::OK);
    assert_eq!(call(&app, "/api/v1/query", Some("Bearer from-file")).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, "/api/v1/query", Some("Bearer from-env")).await.status(), StatusCode::OK);
    for path in ["/api/v1/write", "/api/v1/query", "/api/v2/alerts"] {
        assert_eq!(call(&app, path, None).await.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(call(&app, path, Some("Bearer everywhere")).await.status(), StatusCode::OK, "{path}");
        assert_eq!(call(&app, path, Some("Bearer env-all")).await.status(), StatusCode::OK, "{path}");
    }
    let missing = AuthConfig {
        read: GroupAuth { bearer_token_files: vec![dir.path().join("nope")], ..Default::default() },
        ..Default::default()
    };
    assert!(Authenticator::from_config(&missing, |_| None).is_err());
}

#[tokio::test]
async fn internal_token_passes_every_group_and_stands_in_for_a_client_cert() {
    let mut cfg = AuthConfig::default();
    cfg.all.bearer_tokens.push("user-token".into());
    let internal = Secret::new("internal-xyz");
    let auth =
        Authenticator::from_config(&cfg, |_| None).unwrap().with_internal_token(&internal).require_client_cert(true);
    let app = app(auth);
    for path in ["/api/v1/write", "/api/v1/query", "/api/v2/alerts"] {
        assert_eq!(call(&app, path, Some("Bearer internal-xyz")).await.status(), StatusCode::OK, "{path}");
        // Without a verified client certificate even a user token is refused.
        let r = call(&app, path, Some("Bearer user-token")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(call(&app, "/healthz", None).await.status(), StatusCode::OK);

    let mut req = Request::get("/api/v1/query").header(header::AUTHORIZATION, "Bearer user-token");
    req = req.extension(VerifiedClientCert);
    let r = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
