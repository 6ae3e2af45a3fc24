import Foundation
import NIOCore
import NIOPosix

/// A network error in the product's words: what failed, for a person, without the library's
/// types ("the address is in use", "connection refused", "unknown host"), never a dump.
public enum NetworkErrorText {
    /// What went wrong, in a few words (after "cannot listen on X: " or "cannot reach Y: ").
    public static func describe(_ error: any Error) -> String {
        switch error {
        case let error as IOError:
            return describe(errno: error.errnoCode)
        case let error as SocketAddressError.UnknownHost:
            return "unknown host \(error.host) (\(error.errorDescription.lowercased()))"
        case let error as SocketAddressError:
            switch error {
            case .unknown(let host, _): return "unknown host \(host)"
            default: return "not an address that can be used here"
            }
        case let error as NIOConnectionError:
            if let dns = error.dnsAError ?? error.dnsAAAAError, error.connectionErrors.isEmpty {
                return describe(dns)
            }
            // The last attempt says most (happy eyeballs tries each address in turn).
            if let last = error.connectionErrors.last { return describe(last.error) }
            return "no address of \(error.host) could be reached"
        case let error as ChannelError:
            switch error {
            case .connectTimeout: return "no answer (the connection attempt timed out)"
            default: return "the connection failed (\(error))"
            }
        default:
            return "\(error)"
        }
    }

    /// Whether trying again cannot help (an unknown host, an address that cannot be used).
    public static func isPermanent(_ error: any Error) -> Bool {
        switch error {
        case is SocketAddressError.UnknownHost, is SocketAddressError: true
        case let error as NIOConnectionError: error.connectionErrors.isEmpty && (error.dnsAError != nil || error.dnsAAAAError != nil)
        default: false
        }
    }

    static func describe(errno code: CInt) -> String {
        switch code {
        case EADDRINUSE: "the address is in use (another program listens there): choose another port, or :0 for a free one"
        case EADDRNOTAVAIL: "this machine has no such address: give one of its own addresses, or :PORT for all of them"
        case EACCES: "permission denied (ports below 1024 need privileges): choose a port of 1024 or more"
        case ECONNREFUSED: "connection refused (nothing listens there: is the primary running, on that port?)"
        case ETIMEDOUT: "no answer (the connection attempt timed out)"
        case EHOSTUNREACH, ENETUNREACH: "the host cannot be reached (no route to it)"
        case ECONNRESET: "the connection was reset by the other side"
        default: String(cString: strerror(code)).lowercased()
        }
    }
}
