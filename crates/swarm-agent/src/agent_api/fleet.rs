//! The fleet page: what an operator opens first. Nodes, services with their
//! replicas per node, the quorum margin and the last actions this agent took,
//! as one HTML page without scripts on the agent API's port.
//!
//! Who may read it: whoever holds the agent API secret, given as the password
//! of HTTP Basic (any user name; the browser asks) or as a bearer token
//! (docs/decisions.md, "The fleet page"). It only reads: no form, no action.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use time::OffsetDateTime;
use tracing::warn;

use crate::agent_api::{self, ApiState};
use crate::cluster::model::{
    Availability, NodeStatus, NodeView, Role, ServiceMode, ServiceView, TaskView,
};
use crate::cluster::rules::ManagerCounts;
use crate::cluster::snapshot::{self, Report};
use crate::engine::Engine;
use crate::error::Result;
use crate::observe::actions::Action;

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/fleet", get(page))
        .route("/fleet/style.css", get(stylesheet))
        .with_state(state)
}

/// No scripts, no frames, nothing from elsewhere: only our stylesheet.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";
const STYLE: &str = include_str!("../../static/fleet.css");

/// The page refreshes itself this often (a meta refresh: no JavaScript).
const REFRESH_SECONDS: u32 = 15;

async fn page(State(s): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    let given = operator_password(&headers).unwrap_or_default();
    if !agent_api::secret_matches(&given, &s.secret) {
        return unauthorized();
    }
    let now = OffsetDateTime::now_utc();
    let (status, page) = match gather(&s.engine).await {
        Ok((report, tasks)) => (
            StatusCode::OK,
            FleetPage::showing(FleetView::new(
                &report,
                &tasks,
                &s.events.log().newest_first(),
                now,
            )),
        ),
        Err(e) => {
            warn!(error = %e, "fleet page: cannot read the swarm");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                FleetPage::failed(e.to_string()),
            )
        }
    };
    match page.render() {
        Ok(html) => secured((
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )),
        Err(e) => {
            warn!(error = %e, "fleet page: template failed");
            secured((
                StatusCode::INTERNAL_SERVER_ERROR,
                "the fleet page failed to render\n",
            ))
        }
    }
}

async fn stylesheet() -> Response {
    // Not secret (the same for every fleet), so not behind the password: a
    // browser given credentials in the page's URL sends none for its stylesheet.
    secured(([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE))
}

fn unauthorized() -> Response {
    secured((
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"swarm-agent fleet page\", charset=\"UTF-8\"",
        )],
        "the fleet page needs the agent API secret: as the password (any user name) or as a bearer token\n",
    ))
}

/// Headers on every answer: fleet internals are never cached, sniffed or framed.
fn secured(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The secret as the caller gave it: a bearer token, or a Basic password
/// (the user name is ignored: there is one secret per fleet, not accounts).
fn operator_password(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.to_string());
    }
    let decoded = BASE64.decode(value.strip_prefix("Basic ")?.trim()).ok()?;
    let pair = String::from_utf8(decoded).ok()?;
    pair.split_once(':')
        .map(|(_, password)| password.to_string())
}

/// One fresh look per request: the page is never older than the call.
async fn gather(engine: &Engine) -> Result<(Report, Vec<TaskView>)> {
    let report = snapshot::snapshot(engine).await?;
    let tasks = engine.tasks().await?.iter().map(TaskView::from).collect();
    Ok((report, tasks))
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    view: Option<FleetView>,
    problem: String,
    refresh: u32,
}

impl FleetPage {
    fn showing(view: FleetView) -> Self {
        FleetPage {
            view: Some(view),
            problem: String::new(),
            refresh: REFRESH_SECONDS,
        }
    }

    fn failed(problem: String) -> Self {
        FleetPage {
            view: None,
            problem,
            refresh: REFRESH_SECONDS,
        }
    }
}

/// What the page shows, computed from one snapshot: plain strings and numbers.
#[derive(Debug)]
pub struct FleetView {
    pub seen_from: String,
    pub at: String,
    pub health: String,
    pub managers: ManagerCounts,
    pub nodes: Vec<NodeRow>,
    pub services: Vec<ServiceRow>,
    pub warnings: Vec<String>,
    pub actions: Vec<ActionRow>,
}

/// One of the page's tables of nodes or services: a heading with the count,
/// the columns, and the rows each drawn as `ok` or `bad`.
pub struct Table<'a> {
    pub title: &'static str,
    pub columns: &'static [&'static str],
    pub rows: Rows<'a>,
}

pub enum Rows<'a> {
    Nodes(&'a [NodeRow]),
    Services(&'a [ServiceRow]),
}

impl Table<'_> {
    pub fn count(&self) -> usize {
        match self.rows {
            Rows::Nodes(rows) => rows.len(),
            Rows::Services(rows) => rows.len(),
        }
    }
}

#[derive(Debug)]
pub struct NodeRow {
    pub hostname: String,
    pub id: String,
    pub role: String,
    pub availability: Availability,
    pub state: NodeStatus,
    pub zone: String,
    pub addr: String,
    /// The node this page is served from.
    pub this: bool,
    /// Ready and active: takes work.
    pub in_service: bool,
}

#[derive(Debug)]
pub struct ServiceRow {
    pub name: String,
    pub mode: ServiceMode,
    pub running: u64,
    pub desired: u64,
    pub update: String,
    /// "1 replica pending: no suitable node (…)", when tasks wait.
    pub pending: Option<String>,
    pub per_node: Vec<Placement>,
}

/// One service's tasks on one node.
#[derive(Debug, PartialEq, Eq)]
pub struct Placement {
    pub node: String,
    pub running: u64,
    pub desired: u64,
}

#[derive(Debug)]
pub struct ActionRow {
    pub at: String,
    pub kind: String,
    pub subject: String,
    pub detail: String,
}

impl FleetView {
    pub fn tables(&self) -> [Table<'_>; 2] {
        [
            Table {
                title: "Nodes",
                columns: &[
                    "Node",
                    "Role",
                    "Availability",
                    "State",
                    "Zone",
                    "Address",
                    "ID",
                ],
                rows: Rows::Nodes(&self.nodes),
            },
            Table {
                title: "Services",
                columns: &[
                    "Service",
                    "Mode",
                    "Running/desired",
                    "Per node (running/desired)",
                    "Update",
                ],
                rows: Rows::Services(&self.services),
            },
        ]
    }

    pub fn new(
        report: &Report,
        tasks: &[TaskView],
        actions: &[Action],
        now: OffsetDateTime,
    ) -> Self {
        FleetView {
            seen_from: hostname(&report.nodes, &report.node_id),
            at: utc(now),
            health: format!("{:?}", report.health).to_lowercase(),
            managers: report.managers,
            nodes: report
                .nodes
                .iter()
                .map(|n| node_row(n, &report.node_id))
                .collect(),
            services: report
                .services
                .iter()
                .map(|s| service_row(s, &report.nodes, tasks))
                .collect(),
            warnings: report.warnings.clone(),
            actions: actions.iter().map(action_row).collect(),
        }
    }
}

fn node_row(n: &NodeView, this: &str) -> NodeRow {
    let role = match (n.role, n.leader, n.reachable) {
        (Role::Worker, _, _) => "worker",
        (Role::Manager, true, _) => "manager (leader)",
        (Role::Manager, false, Some(true)) => "manager",
        (Role::Manager, false, _) => "manager (unreachable)",
    };
    NodeRow {
        hostname: n.hostname.clone(),
        id: n.id.chars().take(12).collect(),
        role: role.into(),
        availability: n.availability,
        state: n.state,
        zone: n.labels.get("zone").cloned().unwrap_or_else(|| "-".into()),
        addr: n.addr.clone(),
        this: n.id == this,
        in_service: n.is_ready() && n.availability == Availability::Active,
    }
}

fn service_row(s: &ServiceView, nodes: &[NodeView], tasks: &[TaskView]) -> ServiceRow {
    ServiceRow {
        name: s.name.clone(),
        mode: s.mode,
        running: s.running,
        desired: s.desired,
        update: s.update_state.clone(),
        pending: (s.pending > 0).then(|| crate::cluster::rules::pending_line(s)),
        per_node: placements(&s.id, nodes, tasks),
    }
}

/// Running and desired tasks of one service per node, in the nodes' order;
/// nodes with neither are left out.
pub fn placements(service_id: &str, nodes: &[NodeView], tasks: &[TaskView]) -> Vec<Placement> {
    nodes
        .iter()
        .map(|n| {
            let on_node = tasks
                .iter()
                .filter(|t| t.service_id == service_id && t.node_id == n.id);
            let (running, desired) = on_node.fold((0, 0), |(r, d), t| {
                (r + u64::from(t.running), d + u64::from(t.desired))
            });
            Placement {
                node: if n.hostname.is_empty() {
                    n.id.clone()
                } else {
                    n.hostname.clone()
                },
                running,
                desired,
            }
        })
        .filter(|p| p.running > 0 || p.desired > 0)
        .collect()
}

fn action_row(a: &Action) -> ActionRow {
    ActionRow {
        at: utc(a.at),
        kind: a.kind(),
        subject: a.subject.clone(),
        detail: a.detail.clone(),
    }
}

fn hostname(nodes: &[NodeView], id: &str) -> String {
    nodes
        .iter()
        .find(|n| n.id == id)
        .map_or_else(|| id.to_string(), |n| n.hostname.clone())
}

/// Times on the page are UTC, to the second, as in the logs.
fn utc(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::cluster::model::tests::{replicated as service, worker};
    use crate::cluster::rules::{self, Health};
    use crate::observe::actions::{ActionLog, Outcome};
    use crate::observe::events::Events;
    use crate::observe::metrics::Metrics;

    const SECRET: &str = "fleet-secret";

    fn manager(id: &str) -> NodeView {
        NodeView {
            role: Role::Manager,
            reachable: Some(true),
            leader: true,
            addr: "10.0.0.1".into(),
            labels: BTreeMap::from([("zone".into(), "eu-west-1a".into())]),
            ..worker(id)
        }
    }

    fn task(service: &str, node: &str, running: bool) -> TaskView {
        TaskView {
            service_id: service.into(),
            node_id: node.into(),
            desired: true,
            running,
            waiting: !running,
            reason: None,
        }
    }

    fn report(nodes: Vec<NodeView>, services: Vec<ServiceView>) -> Report {
        Report {
            node_id: nodes[0].id.clone(),
            health: Health::Degraded,
            managers: rules::manager_counts(&nodes),
            warnings: vec!["storefront: 2/3 running".into()],
            nodes,
            services,
        }
    }

    fn render(view: FleetView) -> String {
        FleetPage::showing(view).render().expect("the page renders")
    }

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    #[test]
    fn counts_replicas_per_node() {
        let nodes = vec![manager("m1"), worker("w1"), worker("w2")];
        let tasks = vec![
            task("s1", "m1", true),
            task("s1", "w1", true),
            task("s1", "w1", false),
            task("s2", "w2", true),
        ];
        assert_eq!(
            placements("s1", &nodes, &tasks),
            vec![
                Placement {
                    node: "m1".into(),
                    running: 1,
                    desired: 1
                },
                Placement {
                    node: "w1".into(),
                    running: 1,
                    desired: 2
                },
            ]
        );
    }

    #[test]
    fn shows_nodes_services_quorum_and_actions() {
        let r = report(
            vec![manager("m1"), worker("w1")],
            vec![service("s1", "bookstore_storefront", 2, 3)],
        );
        let tasks = vec![
            task("s1", "m1", true),
            task("s1", "w1", true),
            task("s1", "w1", false),
        ];
        let log = ActionLog::default();
        log.push(Action {
            at: at(1_800_000_000),
            name: "drain",
            outcome: Outcome::Done,
            subject: "w9".into(),
            detail: "its agent asked to leave the swarm".into(),
        });
        log.push(Action {
            at: at(1_800_000_060),
            name: "remove",
            outcome: Outcome::Failed,
            subject: "w9".into(),
            detail: "it left".into(),
        });
        let html = render(FleetView::new(
            &r,
            &tasks,
            &log.newest_first(),
            at(1_800_000_100),
        ));
        for expected in [
            "manager (leader)",
            "eu-west-1a",
            "worker",
            "bookstore_storefront",
            "2/3",
            "w1: 1/2",
            "margin 0",
            "storefront: 2/3 running",
            "2027-01-15 08:00:00 UTC",
            "2027-01-15 08:01:40 UTC",
            "<h2>Nodes (2)</h2>",
            "<h2>Services (1)</h2>",
            "<th>Per node (running/desired)</th>",
            "remove failed",
        ] {
            assert!(html.contains(expected), "page lacks {expected:?}:\n{html}");
        }
        let newest = html
            .find("2027-01-15 08:01:00 UTC")
            .expect("the removal is shown");
        let older = html
            .find("2027-01-15 08:00:00 UTC")
            .expect("the drain is shown");
        assert!(newest < older, "newest action first");
        assert!(!html.contains("<script"), "no scripts");
    }

    #[test]
    fn escapes_a_hostile_node_label() {
        let mut hostile = worker("w1");
        hostile.hostname = "<script>alert('host')</script>".into();
        hostile
            .labels
            .insert("zone".into(), "\"><img src=x onerror=alert(1)>".into());
        let r = report(vec![manager("m1"), hostile], vec![]);
        let html = render(FleetView::new(&r, &[], &[], at(0)));
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        // askama writes numeric character references (&#60; for <).
        assert!(html.contains("&#60;script&#62;"), "{html}");
        assert!(
            html.contains("&#60;img src=x onerror=alert(1)&#62;"),
            "{html}"
        );
    }

    fn app(secret: &str) -> Router {
        router(Arc::new(ApiState {
            engine: Engine::unreachable(),
            secret: secret.into(),
            dry_run: false,
            worker_label_keys: vec![],
            events: Events::new(Metrics::new(), ActionLog::default()),
        }))
    }

    async fn get(app: Router, path: &str, authorization: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
    }

    fn assert_secured(r: &Response) {
        let h = r.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
        assert!(CSP.starts_with("default-src 'none'; style-src 'self'"));
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
    }

    #[tokio::test]
    async fn needs_the_secret() {
        let wrong = [
            None,
            Some(basic("operator", "guess")),
            Some("Bearer guess".to_string()),
            // The secret as the user name is not the password.
            Some(basic(SECRET, "")),
            Some("Basic not-base64!".to_string()),
        ];
        for auth in wrong {
            let r = get(app(SECRET), "/fleet", auth.as_deref()).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
            let challenge = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
            assert!(challenge.starts_with("Basic "), "{challenge}");
            assert_secured(&r);
        }
    }

    #[tokio::test]
    async fn no_secret_configured_means_no_page() {
        for auth in [None, Some("Bearer ".to_string()), Some(basic("x", ""))] {
            let r = get(app(""), "/fleet", auth.as_deref()).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        }
    }

    #[tokio::test]
    async fn the_secret_opens_it_as_password_or_bearer() {
        for auth in [basic("any-name", SECRET), format!("Bearer {SECRET}")] {
            // The engine is unreachable: the page says so, with its headers.
            let r = get(app(SECRET), "/fleet", Some(&auth)).await;
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{auth}");
            assert_secured(&r);
            let body = r.into_body().collect().await.unwrap().to_bytes();
            let html = String::from_utf8_lossy(&body);
            assert!(html.contains("cannot read the swarm"), "{html}");
        }
    }

    #[tokio::test]
    async fn the_stylesheet_is_public_and_plain() {
        let r = get(app(SECRET), "/fleet/style.css", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
        assert_secured(&r);
    }
}
