//! The axum guard: verifies the `Authorization: Bearer` token of every request it wraps and puts
//! the [`Caller`] into the request's extensions.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use http::{HeaderValue, header};
use nivesh_runtime::problem::Problem;
use tower::{Layer, Service};

use crate::verify::{AuthError, Authenticator};

/// The 401 problem. [`RequireAuth`] adds `WWW-Authenticate` (RFC 6750) to it.
pub fn unauthorized_problem(detail: &str) -> Problem {
    Problem::unauthorized(detail)
}

/// Wraps routes so that they need a valid bearer token: `Router::route_layer(require_auth(a))`
/// (route_layer, so unknown paths stay 404 rather than 401) or `Router::layer`.
pub fn require_auth(authenticator: Authenticator) -> RequireAuthLayer {
    RequireAuthLayer { authenticator }
}

/// See [`require_auth`].
#[derive(Clone)]
pub struct RequireAuthLayer {
    authenticator: Authenticator,
}

impl<S> Layer<S> for RequireAuthLayer {
    type Service = RequireAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireAuth {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

/// The service [`RequireAuthLayer`] produces.
#[derive(Clone)]
pub struct RequireAuth<S> {
    inner: S,
    authenticator: Authenticator,
}

impl<S> Service<Request> for RequireAuth<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone is not ready; keep the ready one for this call (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            let result = match bearer_token(&req) {
                Ok(token) => authenticator.authenticate(token).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(caller) => {
                    // The HTTP stack's rate limiter (nivesh_runtime::limits) charges the
                    // verified caller's tenant and investor buckets here.
                    let gate = req
                        .extensions()
                        .get::<nivesh_runtime::limits::CallerGate>()
                        .cloned();
                    if let Some(gate) = gate {
                        let refused = gate
                            .admit(
                                &caller.tenant,
                                caller.investor_id.as_deref(),
                                &caller.subject,
                            )
                            .await;
                        if let Some(response) = refused {
                            return Ok(response);
                        }
                    }
                    req.extensions_mut().insert(caller);
                    inner.call(req).await
                }
                Err(e) => {
                    tracing::info!(error = %e, "request refused: bearer token");
                    Ok(rejection(&e))
                }
            }
        })
    }
}

fn bearer_token(req: &Request) -> Result<&str, AuthError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(AuthError::MissingToken);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("Authorization header is not ASCII".into()))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        AuthError::Malformed("Authorization header is not `Bearer <token>`".into())
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Malformed(
            "Authorization header is not `Bearer <token>`".into(),
        ));
    }
    Ok(token.trim())
}

/// The response for a refused token: the problem plus `WWW-Authenticate` on 401.
fn rejection(e: &AuthError) -> Response {
    let problem = e.to_problem();
    let status = problem.status;
    let mut response = problem.into_response();
    if status == http::StatusCode::UNAUTHORIZED {
        // As the identity contract specifies, also for a missing header.
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    response
}
