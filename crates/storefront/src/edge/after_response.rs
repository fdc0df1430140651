//! The shape of the shop's own middleware (request metrics, friendly error
//! pages): note something about the request, let the services below answer
//! it, then finish the response.
//!
//! A tower service rather than `axum::middleware::from_fn`: these layers do
//! nothing async before the services below, so they hand the inner future on
//! as it is, where `from_fn` clones the whole stack below and boxes it on
//! every request (docs/decisions.md, "Layers that need no route wrap the
//! router once").

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::Request;
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

/// What a layer does around each request.
pub trait OnResponse {
    /// What it keeps from the request until the response (a route, a clock).
    /// Dropped unfinished if the request is abandoned.
    type Pending: Finish;

    fn on_request(&self, request: &Request) -> Self::Pending;
}

/// The second half of an [`OnResponse`].
pub trait Finish {
    fn finish(self, response: Response) -> Response;
}

/// Wraps a service in an [`OnResponse`].
#[derive(Debug, Clone)]
pub struct AfterResponseLayer<H> {
    hook: H,
}

impl<H> AfterResponseLayer<H> {
    pub fn new(hook: H) -> Self {
        AfterResponseLayer { hook }
    }
}

impl<H: Clone, S> Layer<S> for AfterResponseLayer<H> {
    type Service = AfterResponse<H, S>;

    fn layer(&self, inner: S) -> Self::Service {
        AfterResponse {
            hook: self.hook.clone(),
            inner,
        }
    }
}

/// See [`AfterResponseLayer`].
#[derive(Debug, Clone)]
pub struct AfterResponse<H, S> {
    hook: H,
    inner: S,
}

impl<H, S> Service<Request> for AfterResponse<H, S>
where
    H: OnResponse,
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Finishing<S::Future, H::Pending>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let pending = self.hook.on_request(&request);
        Finishing {
            inner: self.inner.call(request),
            pending: Some(pending),
        }
    }
}

pin_project! {
    /// The inner service's future, then the hook's second half.
    pub struct Finishing<F, P> {
        #[pin]
        inner: F,
        pending: Option<P>,
    }
}

impl<F, P, E> Future for Finishing<F, P>
where
    F: Future<Output = Result<Response, E>>,
    P: Finish,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let pending = this
            .pending
            .take()
            .expect("a future is not polled after it is ready");
        Poll::Ready(result.map(|response| pending.finish(response)))
    }
}
