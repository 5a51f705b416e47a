import InboundServer
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import PetrelConfig
import Prometheus
import ServiceLifecycle

/// Serves `/metrics` (the Prometheus text format) and `/healthz` over HTTP/1.1 on `[metrics] listen`.
struct MetricsServer: Service {
    let address: ListenAddress
    let registry: PrometheusCollectorRegistry
    let logger: Logger

    func run() async throws {
        let server = try await ListenError.naming(address, "metrics.listen") {
            try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: address.host, port: address.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                    }
                }
        }
        logger.info("metrics listening", metadata: ["address": "\(address)"])
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { connections in
                    for try await connection in connections {
                        group.addTask { try? await self.serve(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            server.channel.close(promise: nil)
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var path = ""
            for try await part in inbound {
                switch part {
                case .head(let head):
                    path = head.uri
                case .body:
                    continue
                case .end:
                    let (status, body, type) = respond(to: path)
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Type", value: type)
                    headers.add(name: "Content-Length", value: String(body.readableBytes))
                    try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)))
                    try await outbound.write(.body(.byteBuffer(body)))
                    try await outbound.write(.end(nil))
                }
            }
        }
    }

    private func respond(to path: String) -> (HTTPResponseStatus, ByteBuffer, String) {
        switch path.split(separator: "?").first.map(String.init) ?? path {
        case "/metrics":
            var bytes: [UInt8] = []
            registry.emit(into: &bytes)
            return (.ok, ByteBuffer(bytes: bytes), "text/plain; version=0.0.4; charset=utf-8")
        case "/healthz":
            return (.ok, ByteBuffer(string: "ok\n"), "text/plain")
        default:
            return (.notFound, ByteBuffer(string: "not found\n"), "text/plain")
        }
    }
}
