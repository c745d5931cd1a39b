//! A small gRPC service for the tests, `shop.Items`, served by tonic on a loopback port:
//! one method of each kind. Two implementations differ in one field (`price`), as a
//! legacy and a new service would. Written without code generation: the messages derive
//! `prost::Message`, the service routes by path to tonic's own call handlers.
#![allow(dead_code)]

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::uri::PathAndQuery;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::server::{
    ClientStreamingService, Grpc, NamedService, ServerStreamingService, StreamingService,
    UnaryService,
};
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRequest {
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// The server waits this long before it answers.
    #[prost(uint32, tag = "2")]
    pub delay_ms: u32,
    /// Bytes of `blob` in the answer.
    #[prost(uint32, tag = "3")]
    pub blob_bytes: u32,
    /// Fail with this status code instead of answering.
    #[prost(int32, tag = "4")]
    pub fail_with: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Item {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(int64, tag = "3")]
    pub price: i64,
    #[prost(string, repeated, tag = "4")]
    pub tags: Vec<String>,
    #[prost(bytes = "vec", tag = "5")]
    pub blob: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListRequest {
    #[prost(uint32, tag = "1")]
    pub count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(uint32, tag = "1")]
    pub count: u32,
    #[prost(int64, tag = "2")]
    pub total: i64,
}

/// The `.proto` the messages above follow (for descriptor sets).
pub const PROTO: &str = r#"
syntax = "proto3";
package shop;
message GetRequest { int64 id = 1; uint32 delay_ms = 2; uint32 blob_bytes = 3; int32 fail_with = 4; }
message Item { int64 id = 1; string name = 2; int64 price = 3; repeated string tags = 4; bytes blob = 5; }
message ListRequest { uint32 count = 1; }
message Summary { uint32 count = 1; int64 total = 2; }
service Items {
  rpc Get(GetRequest) returns (Item) { option idempotency_level = NO_SIDE_EFFECTS; }
  rpc List(ListRequest) returns (stream Item);
  rpc Upload(stream Item) returns (Summary);
  rpc Chat(stream Item) returns (stream Item);
}
"#;

/// One implementation of `shop.Items`: its items cost `price_per_id` times their id.
#[derive(Clone)]
pub struct Items {
    pub price_per_id: i64,
    /// Metadata the last call carried, to show what reached the service.
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<http::HeaderMap>>>,
}

impl Items {
    pub fn new(price_per_id: i64) -> Self {
        Items {
            price_per_id,
            seen: Default::default(),
        }
    }

    fn item(&self, id: i64) -> Item {
        Item {
            id,
            name: format!("item {id}"),
            price: id * self.price_per_id,
            tags: vec!["a".into(), "b".into()],
            blob: Vec::new(),
        }
    }
}

impl NamedService for Items {
    const NAME: &'static str = "shop.Items";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type ItemStream = Pin<Box<dyn Stream<Item = Result<Item, Status>> + Send>>;

struct Get(Items);
impl UnaryService<GetRequest> for Get {
    type Response = Item;
    type Future = BoxFuture<Result<Response<Item>, Status>>;
    fn call(&mut self, req: Request<GetRequest>) -> Self::Future {
        let items = self.0.clone();
        Box::pin(async move {
            let r = req.into_inner();
            tokio::time::sleep(Duration::from_millis(u64::from(r.delay_ms))).await;
            if r.fail_with != 0 {
                return Err(Status::new(
                    r.fail_with.into(),
                    format!("item {} failed", r.id),
                ));
            }
            let mut item = items.item(r.id);
            item.blob = vec![7; r.blob_bytes as usize];
            let mut resp = Response::new(item);
            resp.metadata_mut().insert(
                "x-served-by",
                format!("price-{}", items.price_per_id).parse().unwrap(),
            );
            resp.metadata_mut().insert_bin(
                "x-trace-bin",
                tonic::metadata::MetadataValue::from_bytes(&[0, 1, 2, 255]),
            );
            Ok(resp)
        })
    }
}

struct List(Items);
impl ServerStreamingService<ListRequest> for List {
    type Response = Item;
    type ResponseStream = ItemStream;
    type Future = BoxFuture<Result<Response<ItemStream>, Status>>;
    fn call(&mut self, req: Request<ListRequest>) -> Self::Future {
        let items = self.0.clone();
        let count = req.into_inner().count;
        Box::pin(async move {
            let stream =
                futures_util::stream::iter(1..=i64::from(count)).map(move |id| Ok(items.item(id)));
            Ok(Response::new(Box::pin(stream) as ItemStream))
        })
    }
}

struct Upload;
impl ClientStreamingService<Item> for Upload {
    type Response = Summary;
    type Future = BoxFuture<Result<Response<Summary>, Status>>;
    fn call(&mut self, req: Request<Streaming<Item>>) -> Self::Future {
        Box::pin(async move {
            let mut stream = req.into_inner();
            let mut summary = Summary::default();
            while let Some(item) = stream.next().await {
                let item = item?;
                summary.count += 1;
                summary.total += item.price;
            }
            Ok(Response::new(summary))
        })
    }
}

struct Chat;
impl StreamingService<Item> for Chat {
    type Response = Item;
    type ResponseStream = ItemStream;
    type Future = BoxFuture<Result<Response<ItemStream>, Status>>;
    fn call(&mut self, req: Request<Streaming<Item>>) -> Self::Future {
        Box::pin(async move {
            // Each item comes back as soon as it arrives, its price doubled: the client
            // sees an answer before it has sent everything.
            let stream = req.into_inner().map(|item| {
                item.map(|mut i| {
                    i.price *= 2;
                    i
                })
            });
            Ok(Response::new(Box::pin(stream) as ItemStream))
        })
    }
}

impl Service<http::Request<Body>> for Items {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        self.seen.lock().unwrap().push(req.headers().clone());
        let items = self.clone();
        Box::pin(async move {
            let resp = match req.uri().path() {
                "/shop.Items/Get" => {
                    Grpc::new(ProstCodec::default())
                        .unary(Get(items), req)
                        .await
                }
                "/shop.Items/List" => {
                    Grpc::new(ProstCodec::default())
                        .server_streaming(List(items), req)
                        .await
                }
                "/shop.Items/Upload" => {
                    Grpc::new(ProstCodec::default())
                        .client_streaming(Upload, req)
                        .await
                }
                "/shop.Items/Chat" => Grpc::new(ProstCodec::default()).streaming(Chat, req).await,
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(resp)
        })
    }
}

/// `items` served over h2c on a loopback port.
pub async fn serve(items: Items) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(items)
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    addr
}

/// A client of `shop.Items` over a channel.
#[derive(Clone)]
pub struct ItemsClient {
    grpc: tonic::client::Grpc<Channel>,
}

impl ItemsClient {
    /// Over h2c to `addr`.
    pub async fn connect(addr: SocketAddr) -> ItemsClient {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        ItemsClient::over(channel)
    }

    pub fn over(channel: Channel) -> ItemsClient {
        ItemsClient {
            grpc: tonic::client::Grpc::new(channel),
        }
    }

    async fn ready(&mut self) {
        self.grpc.ready().await.unwrap();
    }

    pub async fn get(
        &mut self,
        req: impl tonic::IntoRequest<GetRequest>,
    ) -> Result<Response<Item>, Status> {
        self.ready().await;
        let path = PathAndQuery::from_static("/shop.Items/Get");
        self.grpc
            .unary(req.into_request(), path, ProstCodec::default())
            .await
    }

    pub async fn list(&mut self, count: u32) -> Result<Vec<Item>, Status> {
        self.ready().await;
        let path = PathAndQuery::from_static("/shop.Items/List");
        let resp = self
            .grpc
            .server_streaming(
                Request::new(ListRequest { count }),
                path,
                ProstCodec::default(),
            )
            .await?;
        let mut stream: Streaming<Item> = resp.into_inner();
        let mut out = Vec::new();
        while let Some(item) = stream.message().await? {
            out.push(item);
        }
        Ok(out)
    }

    pub async fn upload(&mut self, items: Vec<Item>) -> Result<Summary, Status> {
        self.ready().await;
        let path = PathAndQuery::from_static("/shop.Items/Upload");
        let stream = futures_util::stream::iter(items);
        let resp = self
            .grpc
            .client_streaming(Request::new(stream), path, ProstCodec::default())
            .await?;
        Ok(resp.into_inner())
    }

    /// Sends each item only after the answer to the one before arrived: the call is
    /// interactive end to end, nothing is buffered whole on the way.
    pub async fn chat(&mut self, prices: &[i64]) -> Result<Vec<i64>, Status> {
        self.ready().await;
        let path = PathAndQuery::from_static("/shop.Items/Chat");
        let (tx, rx) = tokio::sync::mpsc::channel::<Item>(1);
        let outgoing =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|i| (i, rx)) },
            );
        tx.send(Item {
            price: prices[0],
            ..Default::default()
        })
        .await
        .unwrap();
        let resp = self
            .grpc
            .streaming(Request::new(outgoing), path, ProstCodec::default())
            .await?;
        let mut stream: Streaming<Item> = resp.into_inner();
        let mut answers = Vec::new();
        for next in prices.iter().skip(1).map(Some).chain([None]) {
            let answer = stream.message().await?.expect("an answer per item");
            answers.push(answer.price);
            match next {
                Some(&price) => tx
                    .send(Item {
                        price,
                        ..Default::default()
                    })
                    .await
                    .unwrap(),
                None => break,
            }
        }
        drop(tx);
        assert!(stream.message().await?.is_none());
        Ok(answers)
    }
}

/// The body of a unary call's message, framed as gRPC sends it: for raw HTTP/2 tests.
pub fn frame(message: &impl prost::Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut framed = Vec::with_capacity(5 + body.len());
    framed.push(0);
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(&body);
    framed.into()
}

/// `PROTO` compiled (by protox, as protoc would) into a descriptor set file.
pub fn descriptor_set(dir: &std::path::Path) -> std::path::PathBuf {
    use prost::Message;
    std::fs::write(dir.join("shop.proto"), PROTO).unwrap();
    let set = protox::compile(["shop.proto"], [dir]).expect("the test proto compiles");
    let path = dir.join("shop.binpb");
    std::fs::write(&path, set.encode_to_vec()).unwrap();
    path
}
