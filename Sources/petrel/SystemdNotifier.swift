#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Tells the service manager about the relay's state with the `sd_notify` protocol (see `sd_notify(3)`),
/// without libsystemd: one datagram of `KEY=value` lines to the AF_UNIX socket named by `$NOTIFY_SOCKET`.
/// A name starting with `@` is an abstract socket (its first byte is NUL on the wire).
///
/// Without `$NOTIFY_SOCKET` (not started by systemd with `Type=notify`) every call does nothing.
struct SystemdNotifier: Sendable {
    /// The socket's name as systemd gave it, or `nil` when there is none.
    let socketName: String?

    init(environment: [String: String] = currentEnvironment()) {
        socketName = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    var isEnabled: Bool { socketName != nil }

    /// `READY=1`: start-up is done (listeners bound, queue open), or a reload is.
    @discardableResult
    func notifyReady(status: String? = nil) -> Bool {
        send(["READY=1"] + (status.map { ["STATUS=" + Self.oneLine($0)] } ?? []))
    }

    /// `RELOADING=1` with the monotonic time, before a reload starts; `notifyReady()` must follow once it is
    /// done (applied or refused), or systemd keeps the unit in the "reloading" state.
    @discardableResult
    func notifyReloading(status: String? = "reloading the configuration") -> Bool {
        send(["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())"]
            + (status.map { ["STATUS=" + Self.oneLine($0)] } ?? []))
    }

    /// `STOPPING=1`: shutdown has begun.
    @discardableResult
    func notifyStopping(status: String? = "shutting down") -> Bool {
        send(["STOPPING=1"] + (status.map { ["STATUS=" + Self.oneLine($0)] } ?? []))
    }

    /// `STATUS=…`: a one-line text that `systemctl status` shows.
    @discardableResult
    func notifyStatus(_ text: String) -> Bool {
        send(["STATUS=" + Self.oneLine(text)])
    }

    /// Sends the assignments as one datagram. Returns `false` when there is no socket or the send failed.
    func send(_ assignments: [String]) -> Bool {
        guard let socketName, let address = Self.socketAddress(socketName) else { return false }
        let payload = Array(assignments.joined(separator: "\n").utf8)
        let descriptor = socket(AF_UNIX, Self.datagramType, 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var storage = address.storage
        let sent = withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                payload.withUnsafeBytes { bytes in
                    sendto(descriptor, bytes.baseAddress, bytes.count, Self.noSignal, socketAddress, address.length)
                }
            }
        }
        return sent == payload.count
    }

    /// The `sockaddr_un` for a socket name: a path, or `@name` for the abstract namespace.
    static func socketAddress(_ name: String) -> (storage: sockaddr_un, length: socklen_t)? {
        var bytes = Array(name.utf8)
        guard let first = bytes.first, first == UInt8(ascii: "/") || first == UInt8(ascii: "@") else { return nil }
        let isAbstract = first == UInt8(ascii: "@")
        if isAbstract {
            bytes[0] = 0
        } else {
            bytes.append(0)
        }
        var address = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count <= capacity else { return nil }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            path.copyBytes(from: bytes)
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
        // An abstract name is exactly its bytes; a path may count its NUL.
        return (address, socklen_t(pathOffset + bytes.count))
    }

    /// CLOCK_MONOTONIC in microseconds, as `MONOTONIC_USEC` wants it.
    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }

    private static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }

    static func currentEnvironment() -> [String: String] {
        var environment: [String: String] = [:]
        if let value = getenv("NOTIFY_SOCKET") {
            environment["NOTIFY_SOCKET"] = String(cString: value)
        }
        return environment
    }

    #if canImport(Darwin)
    private static let datagramType = SOCK_DGRAM
    private static let noSignal: Int32 = 0
    #else
    private static let datagramType = Int32(SOCK_DGRAM.rawValue | SOCK_CLOEXEC.rawValue)
    private static let noSignal = Int32(MSG_NOSIGNAL)
    #endif
}
