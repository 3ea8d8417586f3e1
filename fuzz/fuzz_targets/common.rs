//! The served app the request-level targets call: the real router, a model of signal length 8
//! on the deterministic test engine, the default configuration.
use pfd_core::card::ModelCard;
use pfd_core::config::Config;
use pfd_core::engine::testing::MeanEngine;
use pfd_core::http::{Request, Response};
use pfd_core::app::{App, ModelStore, ServedModel};
use pfd_core::router;
use std::sync::OnceLock;

pub const SIGNAL_LENGTH: usize = 8;

struct One(ServedModel);

impl ModelStore for One {
    fn get(&self, name: &str) -> Result<&ServedModel, String> {
        (name == self.0.card.name)
            .then_some(&self.0)
            .ok_or_else(|| format!("no model {name}"))
    }
    fn names(&self) -> Result<Vec<String>, String> {
        Ok(vec![self.0.card.name.clone()])
    }
}

fn app() -> &'static (Config, One) {
    static APP: OnceLock<(Config, One)> = OnceLock::new();
    APP.get_or_init(|| {
        let config = Config::from_vars(&Default::default()).expect("the default configuration");
        let mut card = ModelCard::fallback(&config.default_model);
        card.signal_length = SIGNAL_LENGTH;
        let engine = MeanEngine {
            classes: card.num_classes(),
            ..Default::default()
        };
        (config, One(ServedModel::new(card, Box::new(engine), 1)))
    })
}

/// Answers `req` and checks what every answer must be: never a 5xx (the test engine cannot
/// fail), and a JSON body — for OIP's binary outputs, a JSON header of the announced length;
/// the page's files (`/ui…`, declared by their content type) are the exception.
pub fn answer(req: &Request) -> Response {
    let (config, models) = app();
    let response = router::handle(&App { config, models }, req);
    assert!(
        response.status < 500,
        "{} {} -> {}: {}",
        req.method,
        req.path,
        response.status,
        String::from_utf8_lossy(&response.body)
    );
    let json_length = response
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("inference-header-content-length"))
        .map(|(_, v)| v.parse::<usize>().expect("a numeric header length"))
        .unwrap_or(response.body.len());
    let json = &response.body[..json_length];
    let declared = response
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map_or("", |(_, v)| v.as_str());
    let page_file = ["text/html", "text/javascript", "text/css"]
        .iter()
        .any(|t| declared.starts_with(t));
    if !json.is_empty() && !page_file {
        serde_json::from_slice::<serde_json::Value>(json).unwrap_or_else(|e| {
            panic!(
                "{} {} -> {}: not JSON ({e}): {}",
                req.method,
                req.path,
                response.status,
                String::from_utf8_lossy(&response.body)
            )
        });
    }
    response
}
