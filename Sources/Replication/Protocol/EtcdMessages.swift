import Foundation

// The etcd v3 API messages Lockstep uses, as its gRPC gateway spells them in JSON (etcd 3.4 and
// later serve it at /v3/...): proto field names, 64-bit integers as strings, keys and values as
// base64, fields at their default value (0, false, empty) omitted. Every answer is hostile input:
// each field is optional, integers are checked, and text taken from a value is bounded.

/// A 64-bit integer as the gateway writes it: a JSON string of digits (it also accepts a number).
struct EtcdInteger: Codable, Equatable, Sendable {
    let value: Int64

    init(_ value: Int64) { self.value = value }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            guard let value = Int64(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a 64-bit integer: \(text.prefix(32))")
            }
            self.value = value
        } else {
            value = try container.decode(Int64.self)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(String(value))
    }
}

/// Bytes as the gateway carries them (base64).
struct EtcdBytes: Codable, Equatable, Sendable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }
    init(_ text: String) { bytes = Array(text.utf8) }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let data = Data(base64Encoded: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not base64")
        }
        bytes = [UInt8](data)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Data(bytes).base64EncodedString())
    }

    /// The bytes as one line of printable text, for a message.
    var text: String { Arbiter.printable(bytes) }
}

struct EtcdResponseHeader: Decodable, Sendable {
    let revision: EtcdInteger?
}

/// mvccpb.KeyValue.
struct EtcdKeyValue: Decodable, Sendable {
    let key: EtcdBytes?
    let value: EtcdBytes?
    let createRevision: EtcdInteger?
    let modRevision: EtcdInteger?
    let lease: EtcdInteger?
    /// How many times the key was written since it was created.
    var version: EtcdInteger? = nil

    enum CodingKeys: String, CodingKey {
        case key, value, lease, version
        case createRevision = "create_revision"
        case modRevision = "mod_revision"
    }
}

/// POST /v3/kv/range.
struct EtcdRangeRequest: Encodable, Sendable {
    let key: EtcdBytes
}

struct EtcdRangeResponse: Decodable, Sendable {
    let header: EtcdResponseHeader?
    let kvs: [EtcdKeyValue]?
}

/// POST /v3/kv/put (also a transaction's request_put).
struct EtcdPutRequest: Encodable, Sendable {
    let key: EtcdBytes
    let value: EtcdBytes
    /// 0: no lease.
    let lease: EtcdInteger
}

/// POST /v3/kv/deleterange: every key from `key` up to `rangeEnd` (exclusive).
struct EtcdDeleteRangeRequest: Encodable, Sendable {
    let key: EtcdBytes
    let rangeEnd: EtcdBytes

    enum CodingKeys: String, CodingKey {
        case key
        case rangeEnd = "range_end"
    }
}

/// A transaction's comparison: `key`'s create revision equals `createRevision` (0: the key
/// does not exist).
struct EtcdCompare: Encodable, Sendable {
    let key: EtcdBytes
    let target: String
    let result: String
    let createRevision: EtcdInteger?
    let version: EtcdInteger?

    init(key: EtcdBytes, createRevision: EtcdInteger) {
        self.key = key
        target = "CREATE"
        result = "EQUAL"
        self.createRevision = createRevision
        version = nil
    }

    /// `key` was written fewer than `limit` times (an absent key: 0 times).
    init(key: EtcdBytes, versionBelow limit: EtcdInteger) {
        self.key = key
        target = "VERSION"
        result = "LESS"
        createRevision = nil
        version = limit
    }

    enum CodingKeys: String, CodingKey {
        case key, target, result, version
        case createRevision = "create_revision"
    }
}

/// A transaction's operation: a put or a range.
enum EtcdRequestOperation: Encodable, Sendable {
    case put(EtcdPutRequest)
    case range(EtcdRangeRequest)

    enum CodingKeys: String, CodingKey {
        case put = "request_put"
        case range = "request_range"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .put(let request): try container.encode(request, forKey: .put)
        case .range(let request): try container.encode(request, forKey: .range)
        }
    }
}

/// POST /v3/kv/txn.
struct EtcdTransactionRequest: Encodable, Sendable {
    let compare: [EtcdCompare]
    let success: [EtcdRequestOperation]
    let failure: [EtcdRequestOperation]
}

struct EtcdResponseOperation: Decodable, Sendable {
    let responseRange: EtcdRangeResponse?

    enum CodingKeys: String, CodingKey {
        case responseRange = "response_range"
    }
}

struct EtcdTransactionResponse: Decodable, Sendable {
    let header: EtcdResponseHeader?
    let succeeded: Bool?
    let responses: [EtcdResponseOperation]?

    /// The first key-value of the `index`th response, if it was a range that found one.
    func found(_ index: Int) -> EtcdKeyValue? {
        guard let responses, index < responses.count else { return nil }
        return responses[index].responseRange?.kvs?.first
    }
}

/// POST /v3/lease/grant.
struct EtcdLeaseGrantRequest: Encodable, Sendable {
    let ttl: EtcdInteger

    enum CodingKeys: String, CodingKey {
        case ttl = "TTL"
    }
}

struct EtcdLeaseGrantResponse: Decodable, Sendable {
    let id: EtcdInteger?
    let ttl: EtcdInteger?
    let error: String?

    enum CodingKeys: String, CodingKey {
        case id = "ID"
        case ttl = "TTL"
        case error
    }
}

/// POST /v3/lease/keepalive, /v3/lease/revoke and /v3/lease/timetolive: one lease.
struct EtcdLeaseRequest: Encodable, Sendable {
    let id: EtcdInteger

    enum CodingKeys: String, CodingKey {
        case id = "ID"
    }
}

/// One answer of the keep-alive stream: the lease's new TTL, absent (0) when it no longer
/// exists.
struct EtcdLeaseKeepAliveResponse: Decodable, Sendable {
    struct Result: Decodable, Sendable {
        let ttl: EtcdInteger?

        enum CodingKeys: String, CodingKey {
            case ttl = "TTL"
        }
    }

    let result: Result?
}

/// The lease's remaining TTL in seconds: -1 (or absent) when it has expired.
struct EtcdLeaseTimeToLiveResponse: Decodable, Sendable {
    let ttl: EtcdInteger?

    enum CodingKeys: String, CodingKey {
        case ttl = "TTL"
    }
}

/// What the gateway sends with an HTTP error status.
struct EtcdErrorResponse: Decodable, Sendable {
    let error: String?
    let message: String?
    let code: Int?
}

/// An empty answer whose content does not matter (a put, a revoke, a delete).
struct EtcdIgnoredResponse: Decodable, Sendable {}
