//! Routing: each top-up / withdraw method has a priority list of providers
//! (`bca=sandpay,kilat`). An operation goes to the first provider whose breaker admits it;
//! it fails over to the next only when the previous one has definitely not taken it.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;

use crate::{
    Breaker, BreakerConfig, BreakerState, ErrorClass, OperationRequest, Provider, ProviderError,
    ProviderOperation,
};

/// A provider with its breaker.
struct Routed {
    provider: Arc<dyn Provider>,
    breaker: Breaker,
}

/// The providers and each method's route.
#[derive(Clone)]
pub struct Router {
    providers: Arc<HashMap<String, Routed>>,
    routes: Arc<HashMap<String, Vec<String>>>,
}

/// An operation a provider took.
#[derive(Clone, Debug)]
pub struct Submitted {
    pub operation: ProviderOperation,
    /// Providers tried before it, and why they were passed over.
    pub passed_over: Vec<(String, String)>,
}

/// Why no provider took an operation.
#[derive(Clone, Debug)]
pub enum SubmitError {
    /// No provider of the route is available (breakers open, refused): nothing was taken.
    Unavailable(String),
    /// `provider` may have taken it (a timeout, then no status answer either): the operation
    /// stays with that provider and its status is asked again later. Never failed over.
    Uncertain { provider: String, message: String },
    /// The provider refused the request itself (final).
    Rejected { provider: String, message: String },
    /// No route for the method.
    NoRoute(String),
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(why) => write!(f, "no provider available: {why}"),
            Self::Uncertain { provider, message } => {
                write!(
                    f,
                    "{provider} did not answer; its status will be checked: {message}"
                )
            }
            Self::Rejected { provider, message } => write!(f, "{provider} refused: {message}"),
            Self::NoRoute(method) => write!(f, "no provider route for method {method}"),
        }
    }
}

impl Router {
    /// `routes`: method → provider names in priority order; every name must be a provider.
    pub fn new(
        providers: Vec<Arc<dyn Provider>>,
        routes: HashMap<String, Vec<String>>,
        breaker: BreakerConfig,
    ) -> anyhow::Result<Self> {
        let providers: HashMap<String, Routed> = providers
            .into_iter()
            .map(|p| {
                let name = p.name().to_owned();
                let routed = Routed {
                    breaker: Breaker::new(&name, breaker),
                    provider: p,
                };
                (name, routed)
            })
            .collect();
        for (method, names) in &routes {
            anyhow::ensure!(
                !names.is_empty(),
                "method {method} has an empty provider route"
            );
            for name in names {
                anyhow::ensure!(
                    providers.contains_key(name),
                    "method {method} routes to unknown provider {name}"
                );
            }
        }
        Ok(Self {
            providers: Arc::new(providers),
            routes: Arc::new(routes),
        })
    }

    /// Parses `method=provider,provider;method=provider` (the `*_PROVIDER_ROUTES` setting).
    pub fn parse_routes(raw: &str) -> anyhow::Result<HashMap<String, Vec<String>>> {
        raw.split(';')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|route| {
                let (method, names) = route
                    .split_once('=')
                    .with_context(|| format!("route {route:?} is not method=provider,…"))?;
                let names: Vec<String> = names
                    .split(',')
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect();
                Ok((method.trim().to_lowercase(), names))
            })
            .collect()
    }

    /// The provider called `name`.
    pub fn provider(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(name).map(|r| &r.provider)
    }

    /// Every provider's name and breaker state (for the admin view).
    pub fn breakers(&self) -> Vec<(String, BreakerState)> {
        let mut all: Vec<_> = self
            .providers
            .iter()
            .map(|(name, r)| (name.clone(), r.breaker.state()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Whether `method` has a route.
    pub fn routes(&self, method: &str) -> bool {
        self.routes.contains_key(method)
    }

    /// Sends the operation along its method's route. See the module docs.
    pub async fn submit(&self, request: &OperationRequest) -> Result<Submitted, SubmitError> {
        let url = request.callback_url.clone();
        self.submit_with(request, |_| url.clone()).await
    }

    /// [`Self::submit`], with the callback URL each provider is given (`callback_url(name)`).
    pub async fn submit_with(
        &self,
        request: &OperationRequest,
        callback_url: impl Fn(&str) -> String,
    ) -> Result<Submitted, SubmitError> {
        let names = self
            .routes
            .get(&request.method)
            .ok_or_else(|| SubmitError::NoRoute(request.method.clone()))?;
        let mut passed_over = Vec::new();
        for name in names {
            let Some(routed) = self.providers.get(name) else {
                continue;
            };
            let Some(admission) = routed.breaker.admit() else {
                passed_over.push((name.clone(), "circuit open".to_owned()));
                continue;
            };
            let request = OperationRequest {
                callback_url: callback_url(name),
                ..request.clone()
            };
            let request = &request;
            match routed.provider.create(request).await {
                Ok(operation) => {
                    routed.breaker.succeeded(admission);
                    return Ok(Submitted {
                        operation,
                        passed_over,
                    });
                }
                Err(e) if e.class == ErrorClass::Final => {
                    routed.breaker.succeeded(admission);
                    return Err(SubmitError::Rejected {
                        provider: name.clone(),
                        message: e.message,
                    });
                }
                Err(e) if e.class == ErrorClass::NotTaken => {
                    routed.breaker.failed(admission);
                    metrics::counter!("provider_failovers_total", "provider" => name.clone())
                        .increment(1);
                    passed_over.push((name.clone(), e.message));
                }
                Err(e) => {
                    routed.breaker.failed(admission);
                    // It may have taken the money: only its own word lets us go elsewhere.
                    match self.status_at(routed, request).await {
                        Ok(Some(operation)) => {
                            return Ok(Submitted {
                                operation,
                                passed_over,
                            });
                        }
                        Ok(None) => {
                            metrics::counter!("provider_failovers_total", "provider" => name.clone())
                                .increment(1);
                            passed_over.push((
                                name.clone(),
                                format!("{}; status check: not taken", e.message),
                            ));
                        }
                        Err(status_error) => {
                            return Err(SubmitError::Uncertain {
                                provider: name.clone(),
                                message: format!("{}; status check: {}", e.message, status_error),
                            });
                        }
                    }
                }
            }
        }
        let why = passed_over
            .iter()
            .map(|(name, why)| format!("{name}: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        Err(SubmitError::Unavailable(why))
    }

    async fn status_at(
        &self,
        routed: &Routed,
        request: &OperationRequest,
    ) -> Result<Option<ProviderOperation>, ProviderError> {
        routed
            .provider
            .status(request.kind, &request.reference.to_string())
            .await
    }

    /// Asks `provider` for the operation we created under `reference` (the poller), through
    /// its breaker: `Err` while the breaker is open.
    pub async fn status(
        &self,
        provider: &str,
        kind: crate::OperationKind,
        reference: &str,
    ) -> Result<Option<ProviderOperation>, ProviderError> {
        let routed = self.providers.get(provider).ok_or_else(|| ProviderError {
            class: ErrorClass::Final,
            message: format!("unknown provider {provider}"),
        })?;
        let Some(admission) = routed.breaker.admit() else {
            return Err(ProviderError {
                class: ErrorClass::NotTaken,
                message: "circuit open".into(),
            });
        };
        let answer = routed.provider.status(kind, reference).await;
        match &answer {
            Err(e) if e.class != ErrorClass::Final => routed.breaker.failed(admission),
            _ => routed.breaker.succeeded(admission),
        }
        answer
    }
}
