import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Why an etcd request did not give an answer.
enum EtcdError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No answer (refused, reset, timed out) or etcd cannot serve now (no leader, overloaded):
    /// retrying may help.
    case unavailable(String)
    /// etcd answered that the request is wrong: retrying will not help.
    case rejected(status: Int, message: String)
    /// The answer is not what the v3 gateway sends.
    case malformed(String)
    /// etcd no longer knows the lease named in the request.
    case leaseNotFound

    var description: String {
        switch self {
        case .unavailable(let reason): reason
        case .rejected(let status, let message): "etcd refused the request (HTTP \(status)): \(message)"
        case .malformed(let reason): "etcd's answer is malformed: \(reason)"
        case .leaseNotFound: "etcd does not know the lease"
        }
    }

    var isTransient: Bool {
        switch self {
        case .unavailable: true
        case .rejected, .malformed, .leaseNotFound: false
        }
    }
}

/// A client of etcd's v3 API through its JSON gateway: each request is one HTTP/1.1 POST on a
/// connection of its own (swift-nio's HTTP codec), bounded in time and in the size of the answer.
/// A fresh connection per request keeps a restarted etcd, or a half-dead connection, from
/// holding anything up; Lockstep's arbiter makes a few requests a second at most.
final class EtcdClient: Sendable {
    let endpoint: EtcdEndpoint
    /// How long one request may take, connection included.
    let timeout: TimeAmount
    /// The largest answer accepted (Lockstep's keys and values are tiny).
    static let maximumResponseBytes = 1 << 20

    init(endpoint: EtcdEndpoint, timeout: TimeAmount = .seconds(2)) {
        self.endpoint = endpoint
        self.timeout = timeout
    }

    /// Sends `request` to `path` (e.g. "/v3/kv/txn") and decodes the answer.
    func call<Request: Encodable & Sendable, Response: Decodable & Sendable>(
        _ path: String, _ request: Request, as response: Response.Type
    ) -> EventLoopFuture<Response> {
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        let body: Data
        do { body = try JSONEncoder().encode(request) } catch {
            return loop.makeFailedFuture(EtcdError.malformed("cannot encode the request: \(error)"))
        }
        return exchange(path, body: body, on: loop).flatMapThrowing { status, answer in
            try Self.decode(status: Int(status.code), answer: Data(answer.readableBytesView), as: Response.self)
        }
    }

    /// `call`, waited for. Never call it on an event loop thread.
    func callAndWait<Request: Encodable & Sendable, Response: Decodable & Sendable>(
        _ path: String, _ request: Request, as response: Response.Type
    ) throws(EtcdError) -> Response {
        do {
            return try call(path, request, as: response).wait()
        } catch let error as EtcdError {
            throw error
        } catch {
            throw .unavailable(Self.describe(error))
        }
    }

    /// The answer to a request, from its HTTP status and body.
    static func decode<Response: Decodable>(status: Int, answer data: Data, as: Response.Type) throws -> Response {
        guard status == 200 else {
            let detail = (try? JSONDecoder().decode(EtcdErrorResponse.self, from: data))
            let message = Arbiter.printable(Array((detail?.message ?? detail?.error ?? "no message").utf8))
            if message.contains("requested lease not found") { throw EtcdError.leaseNotFound }
            switch status {
            case 500, 502, 503, 504, 429: throw EtcdError.unavailable("etcd cannot serve now (HTTP \(status)): \(message)")
            default: throw EtcdError.rejected(status: status, message: message)
            }
        }
        do {
            return try JSONDecoder().decode(Response.self, from: data)
        } catch {
            throw EtcdError.malformed("\(error)".prefix(200).description)
        }
    }

    /// One POST exchange: connect, send, collect the answer until its end.
    private func exchange(_ path: String, body: Data, on loop: any EventLoop)
        -> EventLoopFuture<(HTTPResponseStatus, ByteBuffer)>
    {
        let promise = loop.makePromise(of: (HTTPResponseStatus, ByteBuffer).self)
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        head.headers.add(name: "Host", value: "\(endpoint.urlHost):\(endpoint.port)")
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Content-Length", value: "\(body.count)")
        head.headers.add(name: "Connection", value: "close")
        let request = EtcdExchangeHandler.Request(head: head, body: ByteBuffer(bytes: body))
        let limit = Self.maximumResponseBytes
        let deadline = loop.scheduleTask(in: timeout) { [timeout] in
            promise.fail(EtcdError.unavailable("no answer within \(timeout.nanoseconds / 1_000_000) ms"))
        }
        let connection = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        EtcdExchangeHandler(request: request, promise: promise, limit: limit))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
        connection.whenFailure { promise.fail($0) }
        promise.futureResult.whenComplete { _ in
            deadline.cancel()
            connection.whenSuccess { $0.close(promise: nil) }
        }
        return promise.futureResult
    }

    /// A short reason for a transport failure ("connection refused", "no answer within ...").
    static func describe(_ error: any Error) -> String {
        if let error = error as? EtcdError { return error.description }
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        if let error = error as? NIOConnectionError {
            if let first = error.connectionErrors.first { return describe(first.error) }
            if error.dnsAError != nil || error.dnsAAAAError != nil { return "cannot resolve \(error.host)" }
        }
        if case ChannelError.connectTimeout = error { return "connection timed out" }
        return "\(error)".prefix(200).description
    }
}

/// Sends one request when the connection is up and collects the answer.
private final class EtcdExchangeHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    struct Request: Sendable {
        let head: HTTPRequestHead
        let body: ByteBuffer
    }

    private let request: Request
    private let promise: EventLoopPromise<(HTTPResponseStatus, ByteBuffer)>
    private let limit: Int
    private var status: HTTPResponseStatus?
    private var answer = ByteBuffer()

    init(request: Request, promise: EventLoopPromise<(HTTPResponseStatus, ByteBuffer)>, limit: Int) {
        self.request = request
        self.promise = promise
        self.limit = limit
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(request.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
        case .body(var part):
            guard answer.readableBytes + part.readableBytes <= limit else {
                promise.fail(EtcdError.malformed("an answer longer than \(limit) bytes"))
                context.close(promise: nil)
                return
            }
            answer.writeBuffer(&part)
        case .end:
            if let status {
                promise.succeed((status, answer))
            } else {
                promise.fail(EtcdError.malformed("an answer without a status line"))
            }
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(EtcdError.unavailable("etcd closed the connection before answering"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(EtcdError.unavailable(EtcdClient.describe(error)))
        context.close(promise: nil)
    }
}
