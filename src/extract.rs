//! Request extractors shared by the JSON API and the pages: JSON bodies, path ids, query
//! strings and the request URL, rejected with field errors, never axum's plain-text ones;
//! and the one response shape both share, a download ([`attachment`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::error::{AppError, FieldErrors};

/// A JSON body. Malformed JSON is `{"detail"}`; a wrong type or a missing field is
/// `{"errors": {"<field>": [..]}}`. A missing `Content-Type` is accepted (curl users forget
/// it); another content type is refused.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(ct) = content_type
            && !ct.starts_with("application/json")
            && !ct.contains("+json")
        {
            return Err(AppError::BadRequest(format!(
                "Send a JSON body with Content-Type: application/json (got {ct})."
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            AppError::BadRequest(format!(
                "Could not read the request body: {}",
                e.body_text()
            ))
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON bytes into `T`, turning serde's error into a field error where it can.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::BadRequest(
            "Send a JSON object in the request body.".into(),
        ));
    }
    // PostgreSQL text cannot hold NUL: refuse it here, by field, rather than as a database
    // error wherever the value is bound. Only an escaped `\u0000` can put one in a string.
    if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| AppError::BadRequest(format!("Malformed JSON: {e}.")))?;
        if let Some(path) = nul_path(&value, String::new()) {
            let field = if path.is_empty() {
                "body".to_string()
            } else {
                path
            };
            return Err(AppError::Validation(FieldErrors::single(
                field,
                "Remove the NUL character (\\u0000).",
            )));
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            AppError::BadRequest(format!("Malformed JSON: {inner}."))
        } else if let Some(field) = missing_field(&inner.to_string()) {
            AppError::Validation(FieldErrors::single(field, "This field is required."))
        } else if path.is_empty() || path == "." {
            AppError::BadRequest(format!(
                "Invalid body: {}.",
                strip_position(&inner.to_string())
            ))
        } else {
            AppError::Validation(FieldErrors::single(
                path,
                strip_position(&inner.to_string()),
            ))
        }
    })
}

/// The path (`a.b.0`) of the first string or key holding a NUL character.
fn nul_path(value: &serde_json::Value, at: String) -> Option<String> {
    let join = |key: &str| {
        if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(at),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, join(&i.to_string()))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "")))
            } else {
                nul_path(v, join(k))
            }
        }),
        _ => None,
    }
}

/// The field of serde's "missing field `x`" message.
fn missing_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("missing field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// serde_json appends " at line 1 column 17"; the field name already says where.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// The first value of `key` among decoded pairs (a query string's, a form's).
pub fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The raw query string as decoded key/value pairs; never rejects.
#[derive(Debug, Default, Clone)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl QueryPairs {
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        first(&self.0, key)
    }

    /// Pairs as `(&str, String)` for filter parsing.
    pub fn iter(&self) -> impl Iterator<Item = (&str, String)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.clone()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .uri
                .query()
                .map(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        ))
    }
}

/// Typed query parameters (see [`crate::params`]). A list field takes a parameter
/// repeated (`site=a&site=b`); any other parameter the struct knows, given twice, is a field
/// error ("give it once"), not a silent choice of one of the values.
#[derive(Debug, Default)]
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Params)
    }
}

/// Parses a query string into `T`, naming the parameter at fault.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, AppError> {
    let de = serde_html_form::Deserializer::from_bytes(query.as_bytes());
    serde_path_to_error::deserialize(de).map_err(|err| {
        let field = err.path().to_string();
        let message = err.into_inner().to_string();
        // serde_html_form gives a scalar field with several values as "unsupported value".
        if message == "unsupported value" && !field.is_empty() && field != "." {
            AppError::Validation(FieldErrors::single(field, "Give this parameter once."))
        } else {
            AppError::BadRequest(format!("Unreadable query string: {message}."))
        }
    })
}

/// The URL of the current request, for pagination links.
#[derive(Debug, Clone)]
pub struct RequestUrl(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let uri = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        Ok(Self(format!("{}{path}", origin(&parts.headers))))
    }
}

/// `scheme://host` of the request, honouring `X-Forwarded-Proto` from a TLS proxy.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    let Some(host) = host else {
        return String::new();
    };
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

/// A path id that is not a number is a 404, as for any unknown object.
#[derive(Debug, Clone, Copy)]
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| AppError::NotFound)?;
        raw.parse().map(Id).map_err(|_| AppError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Thing {
        name: String,
        port: Option<i64>,
    }

    #[test]
    fn a_nul_character_is_a_field_error_at_its_path() {
        match parse_json::<serde_json::Value>(br#"{"a": [{"b": "x\u0000y"}]}"#) {
            Err(AppError::Validation(e)) => assert_eq!(e.get("a.0.b").len(), 1, "{e:?}"),
            other => panic!("{other:?}"),
        }
        // An escaped backslash followed by "u0000" is no NUL.
        assert!(parse_json::<serde_json::Value>(br#"{"a": "\\u0000"}"#).is_ok());
    }

    #[test]
    fn json_errors_name_the_field() {
        match parse_json::<Thing>(br#"{"name": "a", "port": "x"}"#) {
            Err(AppError::Validation(e)) => assert_eq!(e.get("port").len(), 1, "{e:?}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_json::<Thing>(b"{nope"),
            Err(AppError::BadRequest(m)) if m.starts_with("Malformed JSON")
        ));
        assert!(matches!(
            parse_json::<Thing>(b""),
            Err(AppError::BadRequest(_))
        ));
        assert!(matches!(
            parse_json::<Thing>(b"42"),
            Err(AppError::BadRequest(_))
        ));
    }
}

/// The client's address, when the server knows it (not in in-process tests). Behind a
/// trusted reverse proxy (`--trusted-proxy`) it is the nearest address in
/// `X-Forwarded-For` that is not itself a trusted proxy; otherwise the peer's.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_of(&parts.extensions, &parts.headers)))
    }
}

/// The client of a request (see [`ClientAddr`]), from its extensions and headers.
pub fn client_of(
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
) -> Option<std::net::IpAddr> {
    let trusted = extensions
        .get::<crate::state::TrustedProxies>()
        .map(|t| t.0.as_slice())
        .unwrap_or_default();
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| client_address(c.0.ip(), headers, trusted))
}

/// The client behind `peer`: the peer itself unless it is a trusted proxy, else the
/// right-most `X-Forwarded-For` hop that is not one (each proxy appends the address it saw,
/// so hops further left were written by whoever the untrusted hop was, and may be forged).
pub fn client_address(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) if is_trusted(&ip.to_canonical()) => continue,
            Ok(ip) => return ip.to_canonical(),
            // A hop we cannot read: stop believing the header here.
            Err(_) => break,
        }
    }
    peer
}

/// The device export as a download named for today (`devices-2026-12-07.csv`), streamed.
pub fn csv_export(
    export: impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static,
) -> axum::response::Response {
    let today = time::OffsetDateTime::now_utc().date();
    attachment(
        "text/csv; charset=utf-8",
        &format!("devices-{today}.csv"),
        axum::body::Body::from_stream(export),
    )
}

/// A download: `body` as `content_type`, saved by browsers as `filename` (ASCII, no quotes).
pub fn attachment(
    content_type: &'static str,
    filename: &str,
    body: impl Into<axum::body::Body>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body.into(),
    )
        .into_response()
}
