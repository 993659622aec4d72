//! The gateway answers requests in place on the connection's task when it can: a balancer in
//! its process picks, and a member that answers in place answers without a message. Members
//! that do not, requests they hand back, and requests with bodies go through the mailbox; no
//! pick is left outstanding either way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use troupe_balancer::{Balancer, Forwarder};
use troupe_proxy::http::{Method, Uri};
use troupe_proxy::{HttpCall, HttpRequest, HttpResponse, Proxy, ProxyMsg};
use troupe_runtime::{
    Actor, ActorError, Addr, ChildOptions, Ctx, Mesh, Node, NodeConfig, SupervisorSpec,
};
use troupe_testkit::eventually;

const T: Duration = Duration::from_secs(5);

/// Member `index` of the pool: answers in place when `in_place`, except bodies and `/mailbox`.
struct Member {
    index: usize,
    in_place: bool,
    /// Messages this member handled
    handled: Arc<AtomicUsize>,
}

impl Actor for Member {
    type Msg = HttpCall;

    #[allow(
        clippy::result_large_err,
        reason = "the answer in place hands the request back by value"
    )]
    async fn started(&mut self, ctx: &mut Ctx<HttpCall>) -> Result<(), ActorError> {
        if self.in_place {
            let index = self.index;
            ctx.answer_in_place(move |req: HttpRequest| {
                if req.body.is_empty() && req.path() != "/mailbox" {
                    Ok(HttpResponse::ok(format!("in place {index} {}", req.path())))
                } else {
                    Err(req)
                }
            });
        }
        Ok(())
    }

    async fn handle(&mut self, call: HttpCall, _: &mut Ctx<HttpCall>) -> Result<(), ActorError> {
        self.handled.fetch_add(1, Ordering::SeqCst);
        let req = &call.request;
        let text = format!(
            "mailbox {} {} {}",
            self.index,
            req.path(),
            String::from_utf8_lossy(&req.body)
        );
        call.reply.send(HttpResponse::ok(text));
        Ok(())
    }
}

async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    gateway: SocketAddr,
    path: &str,
    body: &'static str,
) -> String {
    let req = http::Request::builder()
        .method(if body.is_empty() { "GET" } else { "POST" })
        .uri(format!("http://{gateway}{path}"))
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let resp = tokio::time::timeout(T, client.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_answers_in_place_through_a_balancer_and_the_mailbox_otherwise() {
    let node = Node::new("edge", &Mesh::new(), NodeConfig::default()).unwrap();
    let handled: Vec<_> = (0..2).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let counts = handled.clone();
    // member 0 answers in place, member 1 only through its mailbox
    let (pool_spec, pool) = node
        .pool_child("m", 2, ChildOptions::permanent(), move |index| Member {
            index,
            in_place: index == 0,
            handled: counts[index].clone(),
        })
        .unwrap();
    let (lb_spec, lb) = node
        .child(
            "lb",
            ChildOptions::permanent(),
            Balancer::round_robin(&pool).factory(),
        )
        .unwrap();
    let proxy = Proxy::http("127.0.0.1:0")
        .route("/", lb.clone())
        .route("/direct", pool.members()[0].clone());
    let (gateway_spec, gateway) = node
        .child("gateway", ChildOptions::permanent(), proxy.factory())
        .unwrap();
    node.start(
        SupervisorSpec::one_for_one(),
        vec![pool_spec, lb_spec, gateway_spec],
    )
    .await
    .unwrap();
    let member0 = pool.members()[0].clone();
    let ready = eventually("member 0 answers in place", T, async || {
        member0
            .ask_in_place(HttpRequest::new(Method::GET, Uri::from_static("/ready")))
            .map_err(|_| "not yet")
    })
    .await;
    assert_eq!(ready.unwrap().body, "in place 0 /ready");
    let picker = eventually("the balancer shares its picker", T, async || {
        lb.shared::<Forwarder<HttpRequest>>().ok_or("not yet")
    })
    .await;
    let addr: SocketAddr = eventually("the gateway bound", T, async || {
        gateway.call(ProxyMsg::LocalAddr, T).await.ok().flatten()
    })
    .await;
    let lb_handled = || {
        node.actor_stats()
            .into_iter()
            .find(|a| a.name == "lb")
            .map(|a| a.messages_handled)
    };
    let lb_before = lb_handled();
    let client = Client::builder(TokioExecutor::new()).build_http();

    // round robin over both: member 0's half in place, member 1's through its mailbox
    let mut answers = Vec::new();
    for i in 0..10 {
        answers.push(send(&client, addr, &format!("/p{i}"), "").await);
    }
    let in_place = answers
        .iter()
        .filter(|a| a.starts_with("in place 0"))
        .count();
    let mailbox = answers
        .iter()
        .filter(|a| a.starts_with("mailbox 1"))
        .count();
    assert_eq!((in_place, mailbox), (5, 5), "{answers:?}");
    assert_eq!(
        handled[0].load(Ordering::SeqCst),
        0,
        "member 0 got no message"
    );
    assert_eq!(handled[1].load(Ordering::SeqCst), 5);
    assert_eq!(
        lb_handled(),
        lb_before,
        "the gateway picked; the balancer got no message"
    );

    // handed back by the answer in place, and bodies: through the mailbox, either member
    for _ in 0..2 {
        let answer = send(&client, addr, "/mailbox", "").await;
        assert!(answer.starts_with("mailbox "), "{answer}");
        let answer = send(&client, addr, "/body", "hi").await;
        assert!(
            answer.starts_with("mailbox ") && answer.ends_with(" /body hi"),
            "{answer}"
        );
    }
    assert!(
        handled[0].load(Ordering::SeqCst) >= 1,
        "member 0 handed requests back"
    );

    // an actor route without a balancer, answered in place by the actor itself
    assert_eq!(
        send(&client, addr, "/direct/x", "").await,
        "in place 0 /direct/x"
    );
    for member in picker.members() {
        assert_eq!(
            member.outstanding, 0,
            "no pick left outstanding: {member:?}"
        );
    }
}

/// The member a balancer picked for a request it did not answer in place counts as
/// outstanding until it is asked, and a pick dropped unasked leaves nothing outstanding and no
/// verdict on the member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pick_handed_back_counts_until_asked_or_dropped() {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let count = handled.clone();
    let (pool_spec, pool) = node
        .pool_child("m", 1, ChildOptions::permanent(), move |index| Member {
            index,
            in_place: false,
            handled: count.clone(),
        })
        .unwrap();
    let (lb_spec, lb): (_, Addr<HttpCall>) = node
        .child(
            "lb",
            ChildOptions::permanent(),
            Balancer::round_robin(&pool).factory(),
        )
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![pool_spec, lb_spec])
        .await
        .unwrap();
    let picker = eventually("the balancer shares its picker", T, async || {
        lb.shared::<Forwarder<HttpRequest>>().ok_or("not yet")
    })
    .await;
    let Err((request, picked)) =
        picker.ask_in_place(HttpRequest::new(Method::GET, Uri::from_static("/a")))
    else {
        panic!("a member without an answer in place answered in place");
    };
    assert_eq!(picker.members()[0].outstanding, 1, "picked, not yet asked");
    let reply = picked.ask(request, T).await.unwrap();
    assert_eq!(reply.body, "mailbox 0 /a ");
    assert_eq!(picker.members()[0].outstanding, 0);

    let Err((_, picked)) =
        picker.ask_in_place(HttpRequest::new(Method::GET, Uri::from_static("/b")))
    else {
        panic!("answered in place");
    };
    drop(picked);
    let member = &picker.members()[0];
    assert_eq!(
        (member.outstanding, member.available),
        (0, true),
        "{member:?}"
    );
    assert_eq!(
        handled.load(Ordering::SeqCst),
        1,
        "the dropped pick sent nothing"
    );
}
