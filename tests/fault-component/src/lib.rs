//! A deliberately faulty `wasi:http` component: each path is one way a guest goes wrong, so
//! pfd-host's tests (`host/tests/faults.rs`) can check that the host answers for it and keeps
//! serving everybody else. Built by `cargo xtask build-component` (`--only fault`) with the same
//! toolchain and flags as the real component, never shipped.
//!
//! | path     | what the guest does                        | what the host must answer         |
//! |----------|--------------------------------------------|-----------------------------------|
//! | `/trap`  | panics (an abort: a wasm trap)             | 500                               |
//! | `/loop`  | spins forever without yielding             | 504 at the request deadline       |
//! | `/grow`  | allocates without bound                    | 500 at the instance memory limit  |
//! | `/huge`  | streams a response body without end        | the body cut at the response cap  |
//! | `/big`   | announces a 1 GiB `Content-Length`         | 500 before the head is sent       |
//! | other    | answers 200 `ok`                           | 200, at normal latency            |

use futures::SinkExt;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let path = req.path_with_query().unwrap_or_default();
    match path.split('?').next().unwrap_or_default() {
        "/trap" => panic!("fault component: trap requested"),
        "/loop" => loop {
            std::hint::black_box(());
        },
        "/grow" => {
            let mut held: Vec<Vec<u8>> = Vec::new();
            loop {
                // Filled, so every page is really committed (not just reserved).
                held.push(vec![1; 1 << 20]);
            }
        }
        "/huge" => {
            let response =
                OutgoingResponse::new(headers(&[("content-type", "application/octet-stream")]));
            let mut body = response.take_body();
            out.set(response);
            let chunk = vec![b'x'; 1 << 20];
            // Until the host stops taking it (then the write fails) or the deadline stops us.
            while body.send(chunk.clone()).await.is_ok() {}
        }
        "/big" => {
            let response = OutgoingResponse::new(headers(&[("content-length", "1073741824")]));
            let mut body = response.take_body();
            out.set(response);
            let _ = body.send(vec![b'x'; 1 << 10]).await;
        }
        _ => {
            let response = OutgoingResponse::new(headers(&[("content-type", "text/plain")]));
            let _ = out.set_with_body(response, b"ok\n".to_vec()).await;
        }
    }
}

fn headers(list: &[(&str, &str)]) -> Fields {
    let list: Vec<(String, Vec<u8>)> = list
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    Fields::from_list(&list).expect("valid headers")
}
