//! A test component with the product's world that sends one request exactly as told, so the
//! tests can check what the host's outbound policy lets through.
//!
//! `stop-and-quarantine(url, steps, _)`: `steps` is a comma-separated list; README.md beside
//! this crate lists them. The answer is always an error: `upstream` with the HTTP status when a
//! response came back, `transport` with the wasi-http error code when none did.

mod bindings {
    wit_bindgen::generate!({ path: "../../../wit", world: "defender" });
}

use bindings::defender::endpoint::types::{ActionError, ActionStatus, ApiError, MachineAction};
use bindings::defender::endpoint::{credentials, progress, rate_limit};
use bindings::exports::defender::endpoint::actions::{
    FanOut, MachineOutcome, Prepared, QuarantineRequest, Quarantined, Targets, Wait,
};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

struct Probe;

impl bindings::exports::defender::endpoint::actions::Guest for Probe {
    fn stop_and_quarantine(
        url: String,
        steps: String,
        _comment: String,
    ) -> Result<MachineAction, ActionError> {
        let steps: Vec<&str> = steps.split(',').collect();
        if steps.contains(&"mark") && !steps.contains(&"peek") {
            return Err(ActionError::Transport(mark()));
        }
        if steps.contains(&"mark") {
            mark();
        }
        if steps.contains(&"peek") {
            return Err(ActionError::Transport(peek()));
        }
        if steps.contains(&"ambient") {
            return Err(ActionError::Transport(ambient(&url)));
        }
        if steps.contains(&"doze") {
            wasip2::clocks::monotonic_clock::subscribe_duration(3_000_000_000).block();
        }
        let mut authorization = None;
        if steps.contains(&"credential") {
            let grant = credentials::get(false).map_err(ActionError::Credentials)?;
            authorization = Some(grant.authorization);
        }
        if steps.contains(&"reveal") {
            return Err(ActionError::Transport(authorization.unwrap_or_default()));
        }
        if steps.contains(&"own-auth") {
            authorization = Some("Bearer a-token-of-my-own".into());
        }
        if steps.contains(&"refresh-loop") {
            for _ in 0..50 {
                let grant = credentials::get(true).map_err(ActionError::Credentials)?;
                authorization = Some(grant.authorization);
            }
        }
        if steps.contains(&"throttle") {
            rate_limit::throttled(rate_limit::Api::CreateAction, u64::MAX);
        }
        // `permit` asks for the POST's API, `permit-get` for another API's.
        for (step, api) in [
            ("permit", rate_limit::Api::CreateAction),
            ("permit-get", rate_limit::Api::GetAction),
        ] {
            if steps.contains(&step)
                && let rate_limit::Permit::Denied(ms) = rate_limit::acquire(api)
            {
                return Err(ActionError::Transport(format!("permit denied for {ms} ms")));
            }
        }
        if steps.contains(&"late") {
            wasip2::clocks::monotonic_clock::subscribe_duration(1_500_000_000).block();
        }
        if steps.contains(&"nap") {
            wasip2::clocks::monotonic_clock::subscribe_duration(300_000_000).block();
        }
        if steps.contains(&"sleep") {
            wasip2::clocks::monotonic_clock::subscribe_duration(60_000_000_000).block();
        }
        if steps.contains(&"big-call") {
            let big = vec![b'a'; 2 * 1024 * 1024];
            let _ = Fields::from_list(&[("x-big".to_string(), big)]);
        }
        if steps.contains(&"random-4k") {
            std::hint::black_box(wasip2::random::random::get_random_bytes(4096));
        }
        if steps.contains(&"random-flood") {
            loop {
                std::hint::black_box(wasip2::random::random::get_random_bytes(1024));
            }
        }
        if steps.contains(&"fields-flood") {
            // 15 KiB of headers (under the host's 16 KiB for fields) built once; each call makes
            // the host read and check them all, while the guest does next to nothing.
            let list: Vec<(String, Vec<u8>)> = (0..15)
                .map(|i| (format!("x-h{i}"), vec![b'a'; 1000]))
                .collect();
            loop {
                drop(std::hint::black_box(Fields::from_list(&list)));
            }
        }
        if steps.contains(&"progress-flood") {
            let long = "a".repeat(64 * 1024);
            loop {
                progress::report(&progress::Update {
                    machine_id: long.clone(),
                    action_id: long.clone(),
                    status: ActionStatus::Pending,
                    is_final: false,
                    error: None,
                });
            }
        }
        if steps.contains(&"hoard") {
            let mut hoard = Vec::new();
            loop {
                hoard.push(Fields::new());
            }
        }
        if steps.contains(&"grow") {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1024 * 1024]);
                std::hint::black_box(&hoard);
            }
        }
        if steps.contains(&"spin") {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        if steps.contains(&"flood") {
            loop {
                let _ = send(&url, &Method::Post, authorization.clone(), false);
            }
        }
        let method = if steps.contains(&"get") {
            Method::Get
        } else {
            Method::Post
        };
        let mut answer = send(
            &url,
            &method,
            authorization.clone(),
            steps.contains(&"hold"),
        );
        if steps.contains(&"twice") {
            answer = send(&url, &method, authorization, false);
        }
        if steps.contains(&"throttle-after") {
            // Honoured once for the 429 the host saw; the second must not re-arm the pause.
            rate_limit::throttled(rate_limit::Api::CreateAction, 1000);
            rate_limit::throttled(rate_limit::Api::CreateAction, u64::MAX);
        }
        Err(answer)
    }

    /// `comment` is the step: `progress-burst` reports 5000 updates with device-sized IDs,
    /// `progress-long-ids` 100 with 300-byte IDs.
    fn quarantine(request: QuarantineRequest) -> Result<FanOut, ActionError> {
        if request.comment == "other-devices" {
            return Ok(FanOut {
                outcomes: asked(&request).into_iter().map(created).collect(),
                unlisted: None,
            });
        }
        let (count, id_bytes) = match request.comment.as_str() {
            "progress-burst" => (5000, 40),
            "progress-long-ids" => (100, 300),
            _ => return Err(unsupported()),
        };
        let id = "a".repeat(id_bytes);
        for _ in 0..count {
            progress::report(&progress::Update {
                machine_id: id.clone(),
                action_id: id.clone(),
                status: ActionStatus::Pending,
                is_final: false,
                error: None,
            });
        }
        Ok(FanOut {
            outcomes: Vec::new(),
            unlisted: None,
        })
    }

    /// `comment` is the step: `other-devices` answers for devices it was not given; otherwise
    /// the outcomes come back as they were.
    fn await_actions(
        mut outcomes: Vec<MachineOutcome>,
        _wait: Wait,
        comment: String,
    ) -> Vec<MachineOutcome> {
        if comment == "other-devices" {
            for outcome in &mut outcomes {
                outcome.machine_id = "f".repeat(40);
            }
        }
        outcomes
    }

    /// `comment` is the step: `foreign-devices` names two devices nobody asked for and claims
    /// no cap on devices.
    fn prepare(request: QuarantineRequest) -> Result<Prepared, ActionError> {
        let machine_ids = match request.comment.as_str() {
            "foreign-devices" => vec!["f".repeat(40), "e".repeat(40)],
            "other-devices" => asked(&request),
            _ => return Err(unsupported()),
        };
        Ok(Prepared {
            machine_ids,
            sha1: "87662bc3d60e4200ceaf7aae249d1c343f4b83c9".into(),
            max_machines: u32::MAX,
        })
    }

    fn get_action(_: String) -> Result<MachineAction, ActionError> {
        Err(unsupported())
    }

    fn cancel_action(_: String, _: String) -> Result<MachineAction, ActionError> {
        Err(unsupported())
    }
}

/// The devices a request names, lower-cased.
fn asked(request: &QuarantineRequest) -> Vec<String> {
    match &request.targets {
        Targets::Machines(ids) => ids
            .iter()
            .map(|id| id.trim().to_ascii_lowercase())
            .collect(),
        Targets::Everywhere => Vec::new(),
    }
}

/// A made-up pending action for `machine_id`, as if the API had created it.
fn created(machine_id: String) -> MachineOutcome {
    let action = MachineAction {
        id: "00000000-0000-4000-8000-000000000001".into(),
        action_type: Some("StopAndQuarantineFile".into()),
        status: ActionStatus::Pending,
        machine_id: Some(machine_id.clone()),
        computer_dns_name: None,
        requestor: None,
        requestor_comment: None,
        request_source: None,
        creation_date_time_utc: None,
        last_update_date_time_utc: None,
        cancellation_requestor: None,
        cancellation_comment: None,
        cancellation_date_time_utc: None,
        related_file_info: None,
        raw: "{}".into(),
    };
    MachineOutcome {
        machine_id,
        outcome: Ok(Quarantined {
            action,
            adopted: false,
            poll_error: None,
            cancel_error: None,
        }),
    }
}

/// The probe acts through `stop-and-quarantine`, and the steps of `quarantine` and `prepare`.
fn unsupported() -> ActionError {
    ActionError::Transport("the probe does not know this step".into())
}

/// Sends one request; with `hold`, keeps the response without reading its body and waits a
/// minute (what a guest that never reads its answers does to the host's turns).
/// Bytes `mark` leaves in the instance's memory for `peek` to look for.
const MARK: u8 = 0xa5;
/// The heap `mark` fills: well past the 256 KiB a pooled memory keeps resident.
const MARKED_HEAP_BYTES: usize = 4 * 1024 * 1024;
/// A static `mark` sets: zero in the module's image, so only a memory not reset keeps it.
static MARKED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Leaves its mark in static memory and across 4 MiB of heap, then ends.
fn mark() -> String {
    MARKED.store(MARK, std::sync::atomic::Ordering::SeqCst);
    let heap = vec![MARK; MARKED_HEAP_BYTES];
    std::hint::black_box(&heap);
    std::mem::forget(heap);
    "marked".into()
}

/// Looks for a mark in static memory and in 4 MiB of heap fresh from `memory.grow` (the
/// allocator trusts new memory to be zero, so a memory not reset shows its old bytes).
fn peek() -> String {
    let heap = vec![0_u8; MARKED_HEAP_BYTES];
    let in_heap = std::hint::black_box(&heap)
        .iter()
        .filter(|&&b| b != 0)
        .count();
    let in_static = MARKED.load(std::sync::atomic::Ordering::SeqCst) != 0;
    format!("static marked: {in_static}, non-zero heap bytes: {in_heap}")
}

/// What the sandbox offers beyond the world's imports: environment, arguments, directories,
/// and a TCP connection to the host of `url`.
fn ambient(url: &str) -> String {
    let environment = wasip2::cli::environment::get_environment().len();
    let arguments = wasip2::cli::environment::get_arguments().len();
    let directories = wasip2::filesystem::preopens::get_directories().len();
    let port = url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next()?.parse::<u16>().ok())
        .unwrap_or(80);
    format!(
        "environment {environment}, arguments {arguments}, directories {directories}, \
         tcp {}",
        connect(port)
    )
}

/// Tries a TCP connection to 127.0.0.1:`port` through `wasi:sockets`.
fn connect(port: u16) -> String {
    use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    let network = wasip2::sockets::instance_network::instance_network();
    let socket = match wasip2::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4)
    {
        Ok(socket) => socket,
        Err(code) => return format!("refused at creation: {code:?}"),
    };
    let remote = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port,
        address: (127, 0, 0, 1),
    });
    if let Err(code) = socket.start_connect(&network, remote) {
        return format!("refused: {code:?}");
    }
    socket.subscribe().block();
    match socket.finish_connect() {
        Ok(_) => "connected".into(),
        Err(code) => format!("refused: {code:?}"),
    }
}

fn send(url: &str, method: &Method, authorization: Option<String>, hold: bool) -> ActionError {
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => (Scheme::Https, rest),
        Some((_, rest)) => (Scheme::Http, rest),
        None => return ActionError::Transport("bad url".into()),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut headers = vec![("content-type".to_string(), b"application/json".to_vec())];
    if let Some(value) = authorization {
        headers.push(("authorization".into(), value.into_bytes()));
    }
    let Ok(fields) = Fields::from_list(&headers) else {
        return ActionError::Transport("headers refused".into());
    };
    let request = OutgoingRequest::new(fields);
    let _ = request.set_method(method);
    let _ = request.set_scheme(Some(&scheme));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(if path.is_empty() { "/" } else { path }));
    if let Ok(body) = request.body() {
        if let (Method::Post, Ok(stream)) = (method, body.write()) {
            let _ = stream
                .write(br#"{"Comment":"probe","Sha1":"87662bc3d60e4200ceaf7aae249d1c343f4b83c9"}"#);
        }
        let _ = OutgoingBody::finish(body, None);
    }
    let future = match outgoing_handler::handle(request, None) {
        Ok(future) => future,
        Err(code) => return ActionError::Transport(format!("{code:?}")),
    };
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => {
            if hold {
                wasip2::clocks::monotonic_clock::subscribe_duration(60_000_000_000).block();
            }
            // The `Retry-After` the host handed over, if any, as the message.
            let retry_after = response
                .headers()
                .get("retry-after")
                .first()
                .map(|value| String::from_utf8_lossy(value).into_owned());
            ActionError::Upstream(ApiError {
                status: response.status(),
                code: None,
                message: retry_after,
                target: None,
            })
        }
        Some(Ok(Err(code))) => ActionError::Transport(format!("{code:?}")),
        _ => ActionError::Transport("no response".into()),
    }
}

bindings::export!(Probe with_types_in bindings);
