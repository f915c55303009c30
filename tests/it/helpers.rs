//! A small in-process client for the router: cookie jar, CSRF token, typed helpers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use scraper::{Html, Selector};
use serde_json::Value;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tower::ServiceExt;
use webnet::app::router;
use webnet::auth::Role;
use webnet::state::{AppState, WebConfig};

/// Password given to every user the helpers create.
pub const PASSWORD: &str = "correct horse battery staple";

/// The router plus what a browser would remember between requests.
pub struct TestApp {
    pub pool: PgPool,
    router: Router,
    cookies: HashMap<String, String>,
    /// The CSRF token of the last HTML page seen.
    pub csrf: Option<String>,
    /// Pretend the requests come from this address.
    pub peer: Option<SocketAddr>,
}

/// A response with its body read.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl TestResponse {
    pub fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }

    /// Text of every element matching `css`, trimmed.
    pub fn texts(&self, css: &str) -> Vec<String> {
        let selector = Selector::parse(css).expect("valid selector");
        self.html()
            .select(&selector)
            .map(|e| e.text().collect::<String>().trim().to_string())
            .collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }
}

impl TestApp {
    pub async fn new(pool: PgPool) -> Self {
        Self::with_config(pool, WebConfig::default()).await
    }

    /// A router whose credential key is `secrets` (shared with a worker under test).
    pub async fn with_state(pool: PgPool, secrets: webnet::crypto::SecretBox) -> Self {
        let mut app = Self::with_config(pool.clone(), WebConfig::default()).await;
        app.router = router(AppState::new(pool, secrets), &WebConfig::default());
        app
    }

    /// The router on a database with the whole schema (the tests' migrations cover only
    /// webnet's own tables; this adds apalis's queue schema, as `webnet serve` does).
    pub async fn with_config(pool: PgPool, config: WebConfig) -> Self {
        webnet::db::migrate(&pool).await.expect("queue schema");
        // Server errors are logged, and shown with the failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn")
            .try_init();
        Self {
            router: router(
                AppState::new(pool.clone(), webnet::crypto::SecretBox::random()),
                &config,
            ),
            pool,
            cookies: HashMap::new(),
            csrf: None,
            peer: None,
        }
    }

    /// Sends a request with the jar's cookies; remembers cookies and the page's CSRF token.
    pub async fn send(&mut self, mut request: Request<Body>) -> TestResponse {
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request
                .headers_mut()
                .insert(header::COOKIE, cookie.parse().unwrap());
        }
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for set in headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        let response = TestResponse {
            status,
            headers,
            body,
        };
        if response
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
        {
            let tokens = response.html();
            let meta = Selector::parse(r#"meta[name="csrf-token"]"#).unwrap();
            if let Some(token) = tokens
                .select(&meta)
                .next()
                .and_then(|m| m.value().attr("content"))
                .filter(|t| !t.is_empty())
            {
                self.csrf = Some(token.to_string());
            }
        }
        response
    }

    pub async fn get(&mut self, path: &str) -> TestResponse {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// Posts a form, adding the CSRF token the last page carried.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> TestResponse {
        let mut fields = fields.to_vec();
        let token = self.csrf.clone();
        if let Some(token) = token.as_deref() {
            fields.push(("csrf_token", token));
        }
        self.post_form_raw(path, &fields).await
    }

    /// Posts exactly these fields.
    pub async fn post_form_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> TestResponse {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// Signs in through the real form.
    pub async fn login(&mut self, username: &str, password: &str) -> TestResponse {
        self.get("/login").await;
        self.post_form("/login", &[("username", username), ("password", password)])
            .await
    }

    /// A JSON request with an optional bearer token.
    pub async fn api(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).unwrap()).await
    }

    pub fn session_cookie(&self) -> Option<&String> {
        self.cookies.get(webnet::state::SESSION_COOKIE)
    }

    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_string(), value.to_string());
    }

    /// Creates a user with [`PASSWORD`] in the given customers (created when missing).
    pub async fn create_user(&self, username: &str, role: Role, customers: &[&str]) -> i64 {
        let customers: Vec<String> = customers.iter().map(|c| c.to_string()).collect();
        webnet::auth::accounts::create_user(
            &self.pool,
            username,
            role,
            false,
            &customers,
            PASSWORD.to_string(),
        )
        .await
        .unwrap()
    }

    /// Creates an API token for a user.
    pub async fn token_for(&self, user_id: i64) -> String {
        let mut conn = self.pool.acquire().await.unwrap();
        webnet::auth::tokens::create_token(&mut conn, user_id, "test")
            .await
            .unwrap()
    }
}

/// A `postgres://` URL for the database behind `pool`, to hand to the real binary.
pub fn database_url(pool: &PgPool) -> String {
    let opts = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().expect("test database has a name")
    )
}

/// An answer from a real server, read from a real socket.
#[derive(Debug)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// Status line and headers, as sent.
    pub head: String,
    /// The body.
    pub body: String,
}

impl HttpReply {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// One HTTP/1.1 request to a server on 127.0.0.1 (`Connection: close`), as a client in
/// another process would send it: a bearer token and a JSON body when given.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> std::io::Result<HttpReply> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(HttpReply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// `GET path` on a server on 127.0.0.1; the whole response as text.
pub async fn http_get(port: u16, path: &str) -> String {
    let reply = http(port, "GET", path, None, None).await.unwrap();
    format!("{}\r\n\r\n{}", reply.head, reply.body)
}

/// A signed-in API client: a user of one role in one customer, with a token.
pub struct ApiUser {
    pub token: String,
}

impl TestApp {
    /// Creates a user of `role` in `customer` and returns it with a token.
    pub async fn api_user(&self, username: &str, role: Role, customer: &str) -> ApiUser {
        let id = self.create_user(username, role, &[customer]).await;
        ApiUser {
            token: self.token_for(id).await,
        }
    }

    /// Creates a credential (username and password) and returns its id.
    pub async fn credential(&mut self, user: &ApiUser, username: &str, password: &str) -> i64 {
        let r = self
            .post_json(
                user,
                "/api/v1/credentials/",
                serde_json::json!({"name": format!("{username} login"), "username": username, "password": password}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.json()["id"].as_i64().unwrap()
    }

    pub async fn get_json(&mut self, user: &ApiUser, path: &str) -> TestResponse {
        self.api(Method::GET, path, Some(&user.token), None).await
    }

    pub async fn post_json(
        &mut self,
        user: &ApiUser,
        path: &str,
        body: serde_json::Value,
    ) -> TestResponse {
        self.api(Method::POST, path, Some(&user.token), Some(body))
            .await
    }

    pub async fn patch_json(
        &mut self,
        user: &ApiUser,
        path: &str,
        body: serde_json::Value,
    ) -> TestResponse {
        self.api(Method::PATCH, path, Some(&user.token), Some(body))
            .await
    }

    pub async fn delete(&mut self, user: &ApiUser, path: &str) -> TestResponse {
        self.api(Method::DELETE, path, Some(&user.token), None)
            .await
    }

    /// Creates a region through the API and returns its id.
    pub async fn region(&mut self, user: &ApiUser, name: &str, identifier: &str) -> i64 {
        let r = self
            .post_json(
                user,
                "/api/v1/regions/",
                serde_json::json!({"name": name, "identifier": identifier}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.json()["id"].as_i64().unwrap()
    }

    /// Creates a device through the API and returns its id.
    pub async fn device(&mut self, user: &ApiUser, body: serde_json::Value) -> i64 {
        let r = self.post_json(user, "/api/v1/devices/", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.json()["id"].as_i64().unwrap()
    }

    /// Inserts `n` devices straight into the database (fast), hostnames `{prefix}-{i}`.
    pub async fn bulk_devices(&self, customer: &str, prefix: &str, site: &str, n: i64) {
        sqlx::query(
            "INSERT INTO devices (customer_id, hostname, mgmt_ip, site, vendor, role)
             SELECT c.id, $2 || '-' || lpad(i::text, 5, '0'),
                    ('10.0.0.0'::inet + i), $3, 'cisco', 'edge'
             FROM customers c, generate_series(1, $4) AS i WHERE c.name = $1",
        )
        .bind(customer)
        .bind(prefix)
        .bind(site)
        .bind(n)
        .execute(&self.pool)
        .await
        .unwrap();
    }
}

// Real processes: the `webnet` binary as a server and as workers, and waiting on what they do.

/// The credential key every process of a test shares.
pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdef0123456789";

pub fn webnet(url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_webnet"));
    cmd.env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .env("WEBNET_SECRET_KEY", SECRET_KEY)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Starts `webnet serve` on a free port and returns the child with the lines it printed
/// up to (and including) the banner.
pub async fn start_server(url: &str, extra: &[&str]) -> (tokio::process::Child, Vec<String>, u16) {
    let mut child = webnet(url)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("server exited early");
            seen.push(line.clone());
            if let Some(rest) = line.strip_prefix("webnet is listening on http://127.0.0.1:") {
                break rest.trim_end_matches('/').parse::<u16>().unwrap();
            }
        }
    })
    .await
    .expect("server printed its address");
    // Collect the first-run lines that follow the banner, if any.
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await
    {
        seen.push(line);
    }
    (child, seen, port)
}

/// Starts `webnet worker <args>` and waits until it says which queues it consumes.
pub async fn start_worker(url: &str, args: &[&str]) -> (Child, String) {
    let mut child = webnet(url)
        .arg("worker")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("worker starts")
        .unwrap()
        .expect("worker printed its name");
    let name = line
        .strip_prefix("worker ")
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    (child, name)
}

pub async fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("stops after SIGTERM")
        .unwrap()
}

/// Sends SIGTERM without waiting.
pub async fn send_sigterm(child: &Child) {
    let pid = child.id().unwrap().to_string();
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

pub async fn kill9(child: &mut Child) {
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

pub async fn health(app: &mut TestApp, user: &ApiUser, region: i64) -> (String, String) {
    let r = app
        .get_json(user, &format!("/api/v1/regions/{region}/"))
        .await
        .json();
    (
        r["health_status"].as_str().unwrap().to_string(),
        r["health_message"].as_str().unwrap().to_string(),
    )
}

/// Polls until the region has `status`; returns how long it took.
pub async fn wait_health(
    app: &mut TestApp,
    user: &ApiUser,
    region: i64,
    status: &str,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let (now, message) = health(app, user, region).await;
        if now == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "region still {now} ({message}) after {limit:?}, wanted {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_job(app: &mut TestApp, user: &ApiUser, id: i64, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let job = app
            .get_json(user, &format!("/api/v1/jobs/{id}/"))
            .await
            .json();
        if job["status"] != "queued" && job["status"] != "running" {
            return job;
        }
        assert!(
            started.elapsed() < limit,
            "job {id} still {} after {limit:?}: {job}",
            job["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
