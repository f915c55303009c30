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
use sqlx::postgres::PgRow;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
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

    /// The heading of the page's empty state for `what` (`[data-testid={what}-empty]`).
    pub fn empty_state(&self, what: &str) -> Vec<String> {
        self.texts(&format!("[data-testid={what}-empty] h2"))
    }

    /// The first message the API gives for `field` in its `errors`.
    pub fn field_error(&self, field: &str) -> String {
        let errors = &self.json()["errors"];
        let first = errors[field][0].as_str();
        first
            .unwrap_or_else(|| panic!("no error for {field}: {}", self.body))
            .to_string()
    }

    /// The attribute `name` of the first element matching `css`, which must be there.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let selector = Selector::parse(css).expect("valid selector");
        let html = self.html();
        let element = html.select(&selector).next();
        let element = element.unwrap_or_else(|| panic!("no {css} in {}", self.body));
        element.value().attr(name).map(str::to_string)
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

    /// A router and an API token of an admin of customer "acme".
    pub async fn with_admin(pool: PgPool) -> (Self, ApiUser) {
        let app = Self::new(pool).await;
        let admin = app.api_user("admin", Role::Admin, "acme").await;
        (app, admin)
    }

    /// A router, an admin's API token and the region "US East" (`us-east-1`).
    pub async fn with_region(pool: PgPool) -> (Self, ApiUser, i64) {
        let (mut app, admin) = Self::with_admin(pool).await;
        let region = app.region(&admin, "US East", "us-east-1").await;
        (app, admin, region)
    }

    /// A router and the API tokens of two admins, one of "acme" and one of "globex".
    pub async fn two_customers(pool: PgPool) -> (Self, ApiUser, ApiUser) {
        let (app, acme) = Self::with_admin(pool).await;
        let globex = app.api_user("globex-admin", Role::Admin, "globex").await;
        (app, acme, globex)
    }

    /// A router with a user "alice" of `role` in customer "acme", not signed in yet.
    pub async fn with_alice(pool: PgPool, role: Role) -> Self {
        let app = Self::new(pool).await;
        app.create_user("alice", role, &["acme"]).await;
        app
    }

    /// A browser signed in as "alice", a user of `role` in customer "acme".
    pub async fn signed_in(pool: PgPool, role: Role) -> Self {
        let mut app = Self::with_alice(pool, role).await;
        let r = app.login("alice", PASSWORD).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        app
    }

    /// A browser signed in as "alice" of `role`, an admin's API token, and the region
    /// "US East" (`us-east-1`), made through the API.
    pub async fn signed_in_with_region(pool: PgPool, role: Role) -> (Self, ApiUser, i64) {
        let mut app = Self::signed_in(pool, role).await;
        let admin = app.api_user("api", Role::Admin, "acme").await;
        let region = app.region(&admin, "US East", "us-east-1").await;
        (app, admin, region)
    }

    /// `method path` with these headers and `body` as it is.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        self.send(builder.body(Body::from(body.to_string())).unwrap())
            .await
    }

    /// GETs the page with the form `form` (for its CSRF token), then posts `fields` to
    /// `action` as that form would.
    pub async fn submit(
        &mut self,
        form: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> TestResponse {
        self.get(form).await;
        self.post_form(action, fields).await
    }

    /// Posts the sign-in form of the page last seen, asking to land on `next`.
    pub async fn post_login(&mut self, username: &str, password: &str, next: &str) -> TestResponse {
        let fields = [
            ("username", username),
            ("password", password),
            ("next", next),
        ];
        self.post_form("/login", &fields).await
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
        self.token_named(user_id, "test").await
    }

    /// Creates an API token called `name` for a user, without the API (so no audit row).
    pub async fn token_named(&self, user_id: i64, name: &str) -> String {
        let mut conn = self.pool.acquire().await.unwrap();
        webnet::auth::tokens::create_token(&mut conn, user_id, name)
            .await
            .unwrap()
    }

    /// The id of the customer called `name`.
    pub async fn customer_id(&self, name: &str) -> i64 {
        sqlx::query_scalar("SELECT id FROM customers WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
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

/// Asserts that `object` has every one of `fields` (null or not).
pub fn assert_has_fields(object: &Value, fields: &[&str]) {
    for field in fields {
        assert!(object.get(field).is_some(), "missing {field}: {object}");
    }
}

/// A second router on the same database, as a second `webnet serve` process would be.
pub fn another_server(pool: &PgPool) -> Router {
    let state = AppState::new(pool.clone(), webnet::crypto::SecretBox::random());
    router(state, &WebConfig::default())
}

/// Opens the event stream at `path` on `server` with `browser`'s session cookie, asserts
/// that it answers 200 with `text/event-stream`, and returns the body to read events from.
pub async fn open_stream(server: &Router, browser: &TestApp, path: &str) -> Body {
    let session = browser.session_cookie().expect("a signed-in browser");
    let request = Request::get(path)
        .header(
            header::COOKIE,
            format!("{}={session}", webnet::state::SESSION_COOKIE),
        )
        .body(Body::empty())
        .unwrap();
    let response = server.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    response.into_body()
}

// Reading the database directly, for what the API does not show.

/// The one value `sql` selects.
pub async fn scalar<T>(pool: &PgPool, sql: &'static str) -> T
where
    (T,): for<'r> sqlx::FromRow<'r, PgRow>,
    T: Send + Unpin,
{
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// The one value `sql` selects with `$1` bound to `id`.
pub async fn scalar_for<T>(pool: &PgPool, sql: &'static str, id: i64) -> T
where
    (T,): for<'r> sqlx::FromRow<'r, PgRow>,
    T: Send + Unpin,
{
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The one row `sql` selects with `$1` bound to `id`.
pub async fn row_for<T>(pool: &PgPool, sql: &'static str, id: i64) -> T
where
    T: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
{
    sqlx::query_as(sql).bind(id).fetch_one(pool).await.unwrap()
}

/// Runs a statement made at run time (it names a database or a function).
pub async fn execute(pool: &PgPool, sql: String) {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .unwrap();
}

/// How many rows `from` has: a table and maybe a condition, `"devices WHERE site = 'par'"`.
pub async fn count_rows(pool: &PgPool, from: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {from}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// How many rows of `table` hold `text` anywhere in their columns.
pub async fn rows_mentioning(pool: &PgPool, table: &str, text: &str) -> i64 {
    let sql =
        format!("SELECT count(*) FROM {table} t WHERE row_to_json(t)::text LIKE '%' || $1 || '%'");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(text)
        .fetch_one(pool)
        .await
        .unwrap()
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

/// One API call: the method, the path and the JSON body if any.
pub type Call = (Method, String, Option<Value>);

/// A signed-in API client: a user of one role in one customer, with a token.
pub struct ApiUser {
    /// The user's id.
    pub id: i64,
    pub token: String,
}

impl TestApp {
    /// Creates a user of `role` in `customer` and returns it with a token.
    pub async fn api_user(&self, username: &str, role: Role, customer: &str) -> ApiUser {
        let id = self.create_user(username, role, &[customer]).await;
        self.api_user_of(id).await
    }

    /// An API client for the existing user `id`, with a new token.
    pub async fn api_user_of(&self, id: i64) -> ApiUser {
        ApiUser {
            id,
            token: self.token_for(id).await,
        }
    }

    /// Creates a superuser who belongs to no customer and returns it with a token.
    pub async fn superuser(&self, username: &str) -> ApiUser {
        let password = PASSWORD.to_string();
        let id = webnet::auth::accounts::create_user(
            &self.pool,
            username,
            Role::Admin,
            true,
            &[],
            password,
        )
        .await
        .unwrap();
        self.api_user_of(id).await
    }

    /// Creates a credential (username and password) and returns its id.
    pub async fn credential(&mut self, user: &ApiUser, username: &str, password: &str) -> i64 {
        let name = format!("{username} login");
        let body = serde_json::json!({"name": name, "username": username, "password": password});
        self.create_id(user, "/api/v1/credentials/", body).await
    }

    /// `GET path` as `user`.
    pub async fn get_json(&mut self, user: &ApiUser, path: &str) -> TestResponse {
        self.api(Method::GET, path, Some(&user.token), None).await
    }

    /// The hostnames `GET /api/v1/devices/?query` lists for `user`, asserting a 200.
    pub async fn device_hostnames(&mut self, user: &ApiUser, query: &str) -> Vec<String> {
        let page = self
            .get_json(user, &format!("/api/v1/devices/?{query}"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{query}: {}", page.body);
        let rows = page.json()["results"].as_array().unwrap().clone();
        rows.iter()
            .map(|d| d["hostname"].as_str().unwrap().to_string())
            .collect()
    }

    /// The status `GET path` answers for `user`, once it is `expected` or a second has
    /// passed: what a change made elsewhere (another server, `psql`) is given to be seen.
    pub async fn status_within_a_second(
        &mut self,
        user: &ApiUser,
        path: &str,
        expected: StatusCode,
    ) -> StatusCode {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let status = self.get_json(user, path).await.status;
            if status == expected || Instant::now() > deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many callers this server identified from its authentication cache so far.
    pub async fn auth_cache_hits(&mut self) -> f64 {
        let metrics = self.get("/metrics").await.body;
        metrics
            .lines()
            .find(|l| l.starts_with("webnet_auth_lookups_total{source=\"cache\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Sends `GET path` as `user` until this server answers it from its authentication
    /// cache (the listener that invalidates it has started), for at most five seconds.
    pub async fn until_cached(&mut self, user: &ApiUser, path: &str) {
        let before = self.auth_cache_hits().await;
        for _ in 0..250 {
            assert_eq!(self.get_json(user, path).await.status, StatusCode::OK);
            if self.auth_cache_hits().await > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{path} was never answered from the authentication cache");
    }

    /// `POST path` as `user`, with `body`.
    pub async fn post_json(&mut self, user: &ApiUser, path: &str, body: Value) -> TestResponse {
        self.api(Method::POST, path, Some(&user.token), Some(body))
            .await
    }

    /// `PATCH path` as `user`, with `body`.
    pub async fn patch_json(&mut self, user: &ApiUser, path: &str, body: Value) -> TestResponse {
        self.api(Method::PATCH, path, Some(&user.token), Some(body))
            .await
    }

    /// `PUT path` as `user`, with `body`.
    pub async fn put_json(&mut self, user: &ApiUser, path: &str, body: Value) -> TestResponse {
        self.api(Method::PUT, path, Some(&user.token), Some(body))
            .await
    }

    /// `DELETE path` as `user`.
    pub async fn delete(&mut self, user: &ApiUser, path: &str) -> TestResponse {
        self.api(Method::DELETE, path, Some(&user.token), None)
            .await
    }

    /// Deletes `path` as `user`, asserting 204 No Content, then a 404 when reading it.
    pub async fn assert_deleted(&mut self, user: &ApiUser, path: &str) {
        let r = self.delete(user, path).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{path}: {}", r.body);
        let r = self.get_json(user, path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.body);
    }

    /// Makes each call as `user` and asserts that it answers `status`.
    pub async fn assert_each(&mut self, user: &ApiUser, calls: Vec<Call>, status: StatusCode) {
        for (method, path, body) in calls {
            let r = self
                .api(method.clone(), &path, Some(&user.token), body)
                .await;
            assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        }
    }

    /// Posts each case's body to `path` and asserts a 400 whose errors name the case's field.
    pub async fn assert_field_errors(
        &mut self,
        user: &ApiUser,
        path: &str,
        cases: &[(Value, &str)],
    ) {
        for (body, field) in cases {
            let r = self.post_json(user, path, body.clone()).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body} -> {}", r.body);
            assert!(
                r.json()["errors"][field].is_array(),
                "{field}: {body} -> {}",
                r.body
            );
        }
    }

    /// GETs `path?query` for each case and asserts a 400 whose errors name the case's field.
    pub async fn assert_query_errors(
        &mut self,
        user: &ApiUser,
        path: &str,
        cases: &[(&str, &str)],
    ) {
        for (query, field) in cases {
            let r = self.get_json(user, &format!("{path}?{query}")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query} -> {}", r.body);
            assert!(
                r.json()["errors"][field].is_array(),
                "{field}: {query} -> {}",
                r.body
            );
        }
    }

    /// Posts `body` to a collection, asserts 201 Created and returns the new object.
    pub async fn create(&mut self, user: &ApiUser, path: &str, body: Value) -> Value {
        let r = self.post_json(user, path, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.body);
        r.json()
    }

    /// Creates an object like [`TestApp::create`] and returns its id.
    pub async fn create_id(&mut self, user: &ApiUser, path: &str, body: Value) -> i64 {
        self.create(user, path, body).await["id"].as_i64().unwrap()
    }

    /// Posts to a job shortcut (`/api/v1/commands/run`, …), asserts 202 Accepted and
    /// returns the new job's id.
    pub async fn start_job(&mut self, user: &ApiUser, path: &str, body: Value) -> i64 {
        let r = self.post_json(user, path, body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{path}: {}", r.body);
        r.json()["job_id"].as_i64().unwrap()
    }

    /// Runs `commands` on one device through `/api/v1/commands/run`; the job's id.
    pub async fn run_commands(&mut self, user: &ApiUser, device: i64, commands: &[&str]) -> i64 {
        let body = serde_json::json!({"targets": {"device_ids": [device]}, "commands": commands});
        self.start_job(user, "/api/v1/commands/run", body).await
    }

    /// The `results` of a list the API pages, as far as its first page goes.
    pub async fn list(&mut self, user: &ApiUser, path: &str) -> Vec<Value> {
        let page = self.get_json(user, path).await.json();
        page["results"].as_array().unwrap().clone()
    }

    /// A job as the API shows it.
    pub async fn job(&mut self, user: &ApiUser, id: i64) -> Value {
        let path = format!("/api/v1/jobs/{id}/");
        self.get_json(user, &path).await.json()
    }

    /// A job's log as the API sends it (the raw JSON text).
    pub async fn job_log(&mut self, user: &ApiUser, job: i64) -> String {
        let path = format!("/api/v1/jobs/{job}/logs/");
        self.get_json(user, &path).await.body
    }

    /// The messages of a job's log, in order.
    pub async fn log_messages(&mut self, user: &ApiUser, job: i64) -> Vec<String> {
        let lines = self.list(user, &format!("/api/v1/jobs/{job}/logs/")).await;
        let message = |l: &Value| l["message"].as_str().unwrap().to_string();
        lines.iter().map(message).collect()
    }

    /// Creates a region through the API and returns its id.
    pub async fn region(&mut self, user: &ApiUser, name: &str, identifier: &str) -> i64 {
        let body = serde_json::json!({"name": name, "identifier": identifier});
        self.region_with(user, body).await
    }

    /// Creates a region with every field of `body` and returns its id.
    pub async fn region_with(&mut self, user: &ApiUser, body: Value) -> i64 {
        self.create_id(user, "/api/v1/regions/", body).await
    }

    /// Creates a device with only a hostname, an address and maybe a region; its id.
    pub async fn new_device(
        &mut self,
        user: &ApiUser,
        hostname: &str,
        mgmt_ip: &str,
        region: Option<i64>,
    ) -> i64 {
        let body = serde_json::json!({"hostname": hostname, "mgmt_ip": mgmt_ip, "region": region});
        self.device(user, body).await
    }

    /// Creates a device through the API and returns its id.
    pub async fn device(&mut self, user: &ApiUser, body: Value) -> i64 {
        self.create_id(user, "/api/v1/devices/", body).await
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

/// Runs `dir/install.sh`, which fetches what a test needs from outside the crate, and
/// asserts that it succeeded; `needs` says what that is.
pub async fn install(dir: &std::path::Path, needs: &str) {
    // Tests run in parallel and the scripts share apt's lock, which a second apt-get does not
    // wait for: one script at a time.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let script = dir.join("install.sh");
    let status = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .status()
        .await
        .expect("bash runs");
    assert!(status.success(), "{} failed: {needs}", script.display());
}

pub fn webnet(url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_webnet"));
    cmd.env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .env("WEBNET_SECRET_KEY", SECRET_KEY)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Spawns `command` with `stderr` and returns it with the lines of its stdout.
pub fn spawn_reading(
    mut command: Command,
    stderr: Stdio,
) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    (child, BufReader::new(stdout).lines())
}

/// Starts `webnet serve` on a free port and returns the child with the lines it printed
/// up to (and including) the banner.
pub async fn start_server(url: &str, extra: &[&str]) -> (tokio::process::Child, Vec<String>, u16) {
    let mut serve = webnet(url);
    serve.args(["serve", "--bind", "127.0.0.1:0"]).args(extra);
    // Its log is read for as long as it runs (see `drain`): a pipe nobody reads fills up
    // (64 KiB) and then blocks every runtime thread that logs, which stalls the server.
    let (mut child, mut lines) = spawn_reading(serve, Stdio::piped());
    drain(
        BufReader::new(child.stderr.take().unwrap()).lines(),
        "serve log",
    );
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
    drain(lines, "serve");
    (child, seen, port)
}

/// Keeps reading a child's output (stdout after the lines a test waited for, or its log),
/// so that it neither fills the pipe nor meets a closed one. The lines go to the test's
/// own output, which the harness shows when the test fails.
fn drain<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    mut lines: Lines<BufReader<R>>,
    who: &'static str,
) {
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[{who} stdout] {line}");
        }
    });
}

/// Starts `webnet worker <args>` and waits until it says which queues it consumes.
pub async fn start_worker(url: &str, args: &[&str]) -> (Child, String) {
    let mut worker = webnet(url);
    worker.arg("worker").args(args);
    let (child, mut lines) = spawn_reading(worker, Stdio::inherit());
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
    drain(lines, "worker");
    (child, name)
}

/// Starts a worker named `name` on `queue` (`["--region", id]` or `["--default-queue"]`)
/// that sends a heartbeat every second.
pub async fn beating_worker(url: &str, name: &str, queue: &[&str]) -> (Child, String) {
    let args = [queue, &["--name", name, "--heartbeat-seconds", "1"]].concat();
    start_worker(url, &args).await
}

/// Sends SIGTERM and waits at most `limit` for the process to stop.
pub async fn sigterm(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    send_sigterm(child).await;
    tokio::time::timeout(limit, child.wait())
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

/// Calls `attempt` every `every` until it gives `Ok`; fails with its last `Err` once
/// `limit` has passed.
pub async fn wait_until<T>(
    limit: Duration,
    every: Duration,
    mut attempt: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let started = Instant::now();
    loop {
        match attempt().await {
            Ok(done) => return done,
            Err(why) => assert!(started.elapsed() < limit, "{why} after {limit:?}"),
        }
        tokio::time::sleep(every).await;
    }
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
    wait_until(limit, Duration::from_millis(100), async || {
        match health(app, user, region).await {
            (now, _) if now == status => Ok(()),
            (now, message) => Err(format!("region still {now} ({message}), wanted {status}")),
        }
    })
    .await;
    started.elapsed()
}

/// Polls until the job is neither queued nor running and returns it.
pub async fn wait_job(app: &mut TestApp, user: &ApiUser, id: i64, limit: Duration) -> Value {
    wait_until(limit, Duration::from_millis(100), async || {
        let job = app
            .get_json(user, &format!("/api/v1/jobs/{id}/"))
            .await
            .json();
        match job["status"].as_str() {
            Some("queued" | "running") => Err(format!("job {id} still {}: {job}", job["status"])),
            _ => Ok(job),
        }
    })
    .await
}

/// `(queue, worker)` of each of a job's dispatches, in order.
pub fn dispatches(job: &Value) -> Vec<(String, String)> {
    job["dispatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let text = |key: &str| d[key].as_str().unwrap().to_string();
            (text("queue"), text("worker"))
        })
        .collect()
}

/// The `admin` password a first `webnet serve` printed (among `printed`, from
/// [`start_server`] on `port`), after checking the lines around it.
pub fn first_run_password(printed: &[String], port: u16) -> String {
    let said = |wanted: &str| printed.iter().any(|l| l.trim() == wanted);
    let sign_in = format!("First run: sign in at http://127.0.0.1:{port}/login");
    assert!(said(&sign_in) && said("username: admin"), "{printed:?}");
    let password = printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("password: "));
    password
        .unwrap_or_else(|| panic!("no first-run password among {printed:?}"))
        .to_string()
}
