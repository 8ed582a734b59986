//! The admin handlers on a real SQLite store, called as the gRPC layer
//! calls them (an authenticated operator in the request): they load, call
//! the pure decisions of `tierwise-common`, apply, and answer with typed
//! messages and the right status codes.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

mod support;

use std::sync::Arc;
use tierwise_common::fixtures::{client, server, web};
use tierwise_common::{Check, HostRecord, ProbedVersion, Version, WebServerKind};
use tierwise_controller::artifacts::ArtifactStore;
use tierwise_controller::engine::Engine;
use tierwise_controller::grpc::admin::AdminApi;
use tierwise_controller::grpc::auth::{Principal, Role};
use tierwise_controller::grpc::sessions::Sessions;
use tierwise_controller::store::Store;
use tierwise_proto::v1::admin_service_server::AdminService;
use tierwise_proto::v1::{
    ChangeRolloutRequest, ImportCatalogueRequest, ListAuditRequest, ListHostsRequest,
    PlanRolloutRequest, RolloutChange, SetLicenceRequest, StartRolloutRequest,
};
use tonic::{Code, Request};

const V931: Version = Version::new(9, 3, 1, 33994);
const TARGET: &str = "26.3.100.34058";

fn request<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.extensions_mut().insert(Principal::Operator {
        name: "alice".into(),
        role: Role::Admin,
    });
    request
}

async fn api(dir: &std::path::Path) -> AdminApi {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let hosts: Vec<HostRecord> = vec![
        server("srv", "prod", V931, &[("PSDB", true, V931)]),
        web("web", "prod", V931, WebServerKind::Apache, Check::Yes),
        client("cl-1", "prod", ProbedVersion::Installed(V931), Check::No),
    ];
    for host in &hosts {
        support::hello(&store, host, 1_000).await;
    }
    let sessions = Sessions::default();
    let engine = Engine::new(store.clone(), Arc::new(sessions.clone()));
    AdminApi::new(store, sessions, engine, ArtifactStore::new(dir)).allowing_unsigned_releases(true)
}

fn change(id: &str, change: RolloutChange, host_id: &str) -> Request<ChangeRolloutRequest> {
    request(ChangeRolloutRequest {
        id: id.into(),
        change: change.into(),
        host_id: host_id.into(),
        ..Default::default()
    })
}

#[tokio::test]
async fn handlers_admit_refuse_and_apply_operator_commands() {
    let dir = tempfile::tempdir().unwrap();
    let api = api(dir.path()).await;

    // No catalogue yet: a precondition, saying what to do.
    let plan = PlanRolloutRequest {
        installation: "prod".into(),
        target: TARGET.into(),
        client_waves: String::new(),
    };
    let refused = api.plan_rollout(request(plan.clone())).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("releases import"), "{refused:?}");

    let document = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/catalogue/password-secure.toml"
    ))
    .unwrap();
    api.import_catalogue(request(ImportCatalogueRequest {
        source: "password-secure.toml".into(),
        document,
        ..Default::default()
    }))
    .await
    .unwrap();
    api.set_licence(request(SetLicenceRequest {
        installation: "prod".into(),
        maintenance_until: "2030-12-31".into(),
    }))
    .await
    .unwrap();

    // The plan travels as a typed message.
    let planned = api.plan_rollout(request(plan)).await.unwrap().into_inner();
    let planned = planned.plan.unwrap();
    assert!(!planned.blocked);
    // Nothing is signed, which this controller allows, and says loudly.
    let unsigned = planned
        .findings
        .iter()
        .find(|f| f.rule == "signed_release")
        .expect("a finding about signatures");
    assert!(
        unsigned.reason.starts_with("UNSIGNED RELEASE ALLOWED"),
        "{unsigned:?}"
    );
    assert_eq!(
        planned.acks_required,
        ["breaking", "changelog", "server-manager-password"]
    );

    // Admission: acknowledgements first, by their flags.
    let start = StartRolloutRequest {
        installation: "prod".into(),
        target: TARGET.into(),
        ..Default::default()
    };
    let refused = api.start_rollout(request(start.clone())).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused
            .message()
            .contains("--ack breaking --ack changelog (changelogs of "),
        "{refused:?}"
    );
    let bad_policy = StartRolloutRequest {
        ack_breaking: true,
        ack_server_manager_password: true,
        acks: vec!["changelog".into()],
        restarts: vec!["server=sometimes".into()],
        ..start.clone()
    };
    let refused = api.start_rollout(request(bad_policy)).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let started = api
        .start_rollout(request(StartRolloutRequest {
            ack_breaking: true,
            ack_server_manager_password: true,
            acks: vec!["changelog".into()],
            ..start
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (started.id.as_str(), started.state.as_str()),
        ("r1", "running")
    );

    // Commands: refusals keep their codes and say why; nothing changes.
    let refused = api
        .change_rollout(change("r1", RolloutChange::Approve, ""))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        refused.message(),
        "rollout r1 is running; approve needs it to be waiting_for_approval"
    );
    let refused = api
        .change_rollout(change("r1", RolloutChange::SkipHost, "srv"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("primary server"), "{refused:?}");
    let refused = api
        .change_rollout(change("r1", RolloutChange::SkipHost, "nobody"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    let refused = api
        .change_rollout(change("r9", RolloutChange::Pause, ""))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);

    let paused = api
        .change_rollout(change("r1", RolloutChange::Pause, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paused.state, "paused");
    let skipped = api
        .change_rollout(change("r1", RolloutChange::SkipHost, "cl-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(skipped.skipped_hosts, ["cl-1"]);

    // Every change is audited with the operator's name.
    let audit = api
        .list_audit(request(ListAuditRequest {
            limit: 0,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let mine: Vec<(&str, &str)> = audit
        .entries
        .iter()
        .filter(|e| e.action.starts_with("rollout"))
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        mine,
        [
            ("alice", "rollout start"),
            ("alice", "rollout pause"),
            ("alice", "rollout skip host")
        ]
    );
}

#[tokio::test]
async fn the_host_list_comes_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let api = api(dir.path()).await;
    let page = |token: &str| ListHostsRequest {
        page_size: 2,
        page_token: token.into(),
        ..Default::default()
    };
    let first = api
        .list_hosts(request(page("")))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = first.hosts.iter().map(|h| h.host_id.as_str()).collect();
    assert_eq!(
        (ids.as_slice(), first.next_page_token.as_str()),
        (["cl-1", "srv"].as_slice(), "srv")
    );
    let second = api
        .list_hosts(request(page("srv")))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = second.hosts.iter().map(|h| h.host_id.as_str()).collect();
    assert_eq!(
        (ids.as_slice(), second.next_page_token.as_str()),
        (["web"].as_slice(), "")
    );
    let refused = api.list_hosts(request(page("../x"))).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}
