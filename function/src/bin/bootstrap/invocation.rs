//! The invocation's body as it came, before `lambda_runtime` reads it.
//!
//! `lambda_runtime` deserializes the body into the handler's event type itself and answers a
//! body that is not JSON with its own `DeserializeError`, which the handler never sees. This
//! layer takes the raw bytes out of each invocation (handing `null` on) and keeps them by request
//! id until the handler claims them, so the handler reads the body itself: malformed JSON gets
//! the handler's own `InvalidJson` error naming where the syntax broke.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use lambda_runtime::LambdaInvocation;
use lambda_runtime::tower::Service;
use lambda_runtime::tower::layer::{Layer, layer_fn};

/// Bodies taken from invocations not yet claimed by the handler, by request id.
#[derive(Clone, Default)]
pub struct Bodies(Arc<Mutex<HashMap<String, Bytes>>>);

impl Bodies {
    /// The body of `request_id`, once (empty when there was none).
    pub fn take(&self, request_id: &str) -> Bytes {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(request_id)
            .unwrap_or_default()
    }

    fn put(&self, request_id: String, body: Bytes) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request_id, body);
    }

    /// The layer that fills `self` in front of the handler.
    pub fn layer<S>(&self) -> impl Layer<S, Service = TakeBody<S>> {
        let bodies = self.clone();
        layer_fn(move |inner| TakeBody {
            inner,
            bodies: bodies.clone(),
        })
    }
}

/// The service [`Bodies::layer`] builds.
#[derive(Clone)]
pub struct TakeBody<S> {
    inner: S,
    bodies: Bodies,
}

/// What the handler's event type is deserialized from instead of the body.
const PLACEHOLDER: &[u8] = b"null";

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for TakeBody<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> Self::Future {
        let body = std::mem::replace(&mut invocation.body, Bytes::from_static(PLACEHOLDER));
        self.bodies.put(invocation.context.request_id.clone(), body);
        self.inner.call(invocation)
    }
}
