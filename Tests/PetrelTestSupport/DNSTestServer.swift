import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A real DNS server for tests: dnsmasq, serving the records a test describes on a free loopback port.
///
/// ```swift
/// let server = try DNSTestServer(records: [
///     .mx(domain: "example.test", preference: 10, exchange: "mx1.example.test"),
///     .a(host: "mx1.example.test", address: "192.0.2.1"),
/// ])
/// defer { server.stop() }
/// let resolver = try SystemResolver(servers: [server.address], timeout: .seconds(1), attempts: 1)
/// ```
///
/// What it answers:
/// - The described records, with the TTL given to `init` (dnsmasq's `local-ttl`).
/// - Names in the local domains (every record's top-level domain, plus `localDomains`, "test" by default)
///   are authoritative local data: a name with no record at all is NXDOMAIN; a name with records, but
///   none of the asked type, is NODATA. Exception: a name that only has `.raw` records is NXDOMAIN for
///   other types (a dnsmasq quirk).
/// - Names under a `.servfail` domain are forwarded to a closed port, so dnsmasq never answers: the client
///   times out, which it reports as a temporary failure (like SERVFAIL).
/// - Names outside the local domains are REFUSED at once (there is no upstream server): also a temporary failure.
///
/// The server runs until ``stop()`` or deinit, and never outlives the test process: a guardian shell kills
/// dnsmasq when the process ends, even by a crash. dnsmasq is found at /usr/sbin/dnsmasq,
/// /usr/local/sbin/dnsmasq, or on `PATH` (`scripts/install-test-deps` installs it). An invalid record
/// (say, an address that is not one) makes `init` throw with dnsmasq's complaint.
public final class DNSTestServer: Sendable {
    /// One fact for the server to publish.
    public enum Record: Sendable, Hashable {
        /// An MX record (RFC 1035 §3.3.9).
        case mx(domain: String, preference: Int, exchange: String)
        /// An A record (RFC 1035 §3.4.1). Give several for several addresses.
        case a(host: String, address: String)
        /// An AAAA record (RFC 3596).
        case aaaa(host: String, address: String)
        /// A null MX, "MX 0 ." (RFC 7505): the domain accepts no mail.
        case nullMX(domain: String)
        /// A CNAME (RFC 1035 §3.3.1). dnsmasq serves it only when `target` has records here.
        case cname(alias: String, target: String)
        /// A PTR record (RFC 1035 §3.3.12): `name` is the reverse name itself (`7.2.0.192.in-addr.arpa`,
        /// RFC 1035 §3.5; nibbles under `ip6.arpa` for IPv6, RFC 3596 §2.5). An `.a` or `.aaaa` record
        /// publishes the PTR record of its address too (dnsmasq's `host-record`).
        case ptr(name: String, target: String)
        /// A TXT record (RFC 1035 §3.3.14) holding one string.
        case txt(name: String, text: String)
        /// A record of any type, its RDATA in hex ("0000 00"; spaces and colons are ignored).
        case raw(name: String, type: Int, hexData: String)
        /// `domain` and every name under it time out (dnsmasq forwards them to a closed port).
        case servfail(domain: String)
    }

    /// Why the server could not start.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// "127.0.0.1:PORT", to give to the resolver.
    public let address: String
    /// "[::1]:PORT" when started with `listenOnIPv6`, else `nil`.
    public let ipv6Address: String?
    /// The UDP and TCP port.
    public let port: Int
    /// The TTL of every record served, in seconds.
    public let ttl: Int
    /// The temporary directory with dnsmasq's configuration and log; removed on deinit.
    public let directory: URL

    private let logFile: URL
    private let process: ChildProcess

    /// Starts dnsmasq and returns once it answers queries.
    ///
    /// - Parameters:
    ///   - records: what to serve.
    ///   - ttl: the TTL of every record, in seconds (dnsmasq's default of 0 would defeat caching).
    ///   - localDomains: more domains to answer authoritatively (NXDOMAIN for unknown names).
    ///   - listenOnIPv6: also listen on [::1] with the same port (see ``ipv6Address``).
    ///   - logQueries: log every query to the log file (see ``log()``).
    ///   - port: the port to use, such as that of a stopped server, to "restart" it; `nil` picks a free one.
    public init(
        records: [Record],
        ttl: Int = 300,
        localDomains: [String] = ["test"],
        listenOnIPv6: Bool = false,
        logQueries: Bool = true,
        port: Int? = nil
    ) throws {
        try Self.validate(records)
        let executable = try Self.findDnsmasq()
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("petrel-dns-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let logFile = directory.appendingPathComponent("dnsmasq.log")
        do {
            let (process, port) = try Self.start(
                executable: executable, directory: directory, logFile: logFile,
                configuration: { port, closedPort in
                    Self.configuration(
                        records: records, port: port, closedPort: closedPort, ttl: ttl,
                        localDomains: localDomains, listenOnIPv6: listenOnIPv6, logQueries: logQueries
                    )
                },
                ipv6: listenOnIPv6,
                fixedPort: port
            )
            self.directory = directory
            self.logFile = logFile
            self.ttl = ttl
            self.port = port
            self.address = "127.0.0.1:\(port)"
            self.ipv6Address = listenOnIPv6 ? "[::1]:\(port)" : nil
            self.process = process
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    /// Runs dnsmasq on a free port, retrying with another port when the chosen one was taken meanwhile.
    private static func start(
        executable: URL,
        directory: URL,
        logFile: URL,
        configuration: (_ port: Int, _ closedPort: Int) -> String,
        ipv6: Bool,
        fixedPort: Int?
    ) throws -> (ChildProcess, Int) {
        var lastFailure = Failure(description: "dnsmasq did not start")
        for _ in 0..<(fixedPort == nil ? 5 : 1) {
            let port = try fixedPort ?? Self.freePort(ipv6: ipv6)
            let closedPort = try Self.freePort(ipv6: false)
            let configurationFile = directory.appendingPathComponent("dnsmasq.conf")
            try configuration(port, closedPort).write(to: configurationFile, atomically: true, encoding: .utf8)
            // dnsmasq drops root privileges to "nobody" after reading its configuration: let it read it.
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory.path)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: configurationFile.path)
            _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)

            let process = try ChildProcess(
                executable: executable.path,
                arguments: ["--keep-in-foreground", "--conf-file=\(configurationFile.path)"],
                output: logFile.path
            )
            if Self.waitUntilAnswering(port: port, process: process) {
                return (process, port)
            }
            process.terminate()
            let output = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
            lastFailure = Failure(description: "dnsmasq did not answer on port \(port): \(output)")
            // Another process may have taken the port between the check and dnsmasq's bind: try another.
            guard output.contains("in use") else { break }
        }
        throw lastFailure
    }

    deinit {
        self.stop()
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// Stops dnsmasq (SIGTERM) and waits for it to exit. Queries then go unanswered (the port is closed).
    /// Safe to call more than once.
    public func stop() {
        self.process.terminate()
    }

    /// Whether dnsmasq is still running.
    public var isRunning: Bool {
        self.process.isRunning
    }

    /// What dnsmasq has logged so far (its start-up, and every query when `logQueries` was set).
    public func log() -> String {
        (try? String(contentsOf: self.logFile, encoding: .utf8)) ?? ""
    }

    // MARK: - Configuration

    static func configuration(
        records: [Record], port: Int, closedPort: Int, ttl: Int,
        localDomains: [String], listenOnIPv6: Bool, logQueries: Bool
    ) -> String {
        var lines = [
            "port=\(port)",
            "listen-address=127.0.0.1" + (listenOnIPv6 ? ",::1" : ""),
            "bind-interfaces",
            "no-resolv",
            "no-hosts",
            "no-poll",
            "pid-file=",
            "log-facility=-",
            "local-ttl=\(ttl)",
        ]
        if logQueries {
            lines.append("log-queries")
        }
        var local = Set(localDomains.map(Self.trimmed))
        for record in records {
            switch record {
            case .mx(let domain, let preference, let exchange):
                lines.append("mx-host=\(trimmed(domain)),\(trimmed(exchange)),\(preference)")
            case .a(let host, let address), .aaaa(let host, let address):
                lines.append("host-record=\(trimmed(host)),\(address)")
            case .nullMX(let domain):
                lines.append("mx-host=\(trimmed(domain)),.,0")
            case .cname(let alias, let target):
                lines.append("cname=\(trimmed(alias)),\(trimmed(target))")
            case .ptr(let name, let target):
                lines.append("ptr-record=\(trimmed(name)),\(trimmed(target))")
            case .txt(let name, let text):
                let escaped = text.replacingOccurrences(of: "\\", with: "\\\\")
                    .replacingOccurrences(of: "\"", with: "\\\"")
                lines.append("txt-record=\(trimmed(name)),\"\(escaped)\"")
            case .raw(let name, let type, let hexData):
                let hex = hexData.filter { $0.isHexDigit }
                lines.append("dns-rr=\(trimmed(name)),\(type),\(hex)")
            case .servfail(let domain):
                lines.append("server=/\(trimmed(domain))/127.0.0.1#\(closedPort)")
                continue
            }
            if let topLevel = record.name.split(separator: ".").last {
                local.insert(String(topLevel).lowercased())
            }
        }
        for domain in local.sorted() where !domain.isEmpty {
            lines.append("local=/\(domain)/")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// What dnsmasq would misread rather than reject: an A or AAAA address of the wrong form (which
    /// `host-record` takes for another name).
    private static func validate(_ records: [Record]) throws {
        for record in records {
            switch record {
            case .a(let host, let address):
                var parsed = in_addr()
                guard inet_pton(AF_INET, address, &parsed) == 1 else {
                    throw Failure(description: "A record of \(host): not an IPv4 address: \(address)")
                }
            case .aaaa(let host, let address):
                var parsed = in6_addr()
                guard inet_pton(AF_INET6, address, &parsed) == 1 else {
                    throw Failure(description: "AAAA record of \(host): not an IPv6 address: \(address)")
                }
            default:
                continue
            }
        }
    }

    private static func trimmed(_ name: String) -> String {
        name.hasSuffix(".") && name != "." ? String(name.dropLast()) : name
    }

    private static func findDnsmasq() throws -> URL {
        var candidates = ["/usr/sbin/dnsmasq", "/usr/local/sbin/dnsmasq"]
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        candidates += path.split(separator: ":").map { "\($0)/dnsmasq" }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
            return URL(fileURLWithPath: candidate)
        }
        throw Failure(description: "dnsmasq not found (install it with scripts/install-test-deps)")
    }

    // MARK: - Ports and readiness

    /// A port free for both UDP and TCP on 127.0.0.1 (and on ::1 with `ipv6`), as the kernel picks it.
    /// Nothing listens there afterwards, so it also serves as a dead server's address.
    public static func freePort(ipv6: Bool) throws -> Int {
        for _ in 0..<20 {
            guard let udp = boundSocket(datagram: true, ipv6: false, port: 0) else { continue }
            defer { close(udp.descriptor) }
            var sockets: [Int32] = []
            defer { sockets.forEach { close($0) } }
            var free = true
            var checks = [(datagram: false, ipv6: false)]
            if ipv6 {
                checks += [(true, true), (false, true)]
            }
            for check in checks {
                guard let other = boundSocket(datagram: check.datagram, ipv6: check.ipv6, port: udp.port) else {
                    free = false
                    break
                }
                sockets.append(other.descriptor)
            }
            if free {
                return udp.port
            }
        }
        throw Failure(description: "found no free loopback port")
    }

    private static func boundSocket(datagram: Bool, ipv6: Bool, port: Int) -> (descriptor: Int32, port: Int)? {
        #if canImport(Glibc)
        let socketType = Int32(datagram ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue)
        #else
        let socketType = datagram ? SOCK_DGRAM : SOCK_STREAM
        #endif
        let descriptor = socket(ipv6 ? AF_INET6 : AF_INET, socketType, 0)
        guard descriptor >= 0 else { return nil }
        var storage = sockaddr_storage()
        var length: socklen_t
        if ipv6 {
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    address.pointee.sin6_family = sa_family_t(AF_INET6)
                    address.pointee.sin6_port = in_port_t(UInt16(port).bigEndian)
                    address.pointee.sin6_addr = in6addr_loopback
                }
            }
        } else {
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    address.pointee.sin_family = sa_family_t(AF_INET)
                    address.pointee.sin_port = in_port_t(UInt16(port).bigEndian)
                    address.pointee.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
                }
            }
        }
        let bound = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0 else {
            close(descriptor)
            return nil
        }
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else {
            close(descriptor)
            return nil
        }
        let boundPort = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
        return (descriptor, boundPort)
    }

    /// Sends a query to 127.0.0.1:`port` every 50 ms until any answer comes back (up to 10 s), or until
    /// the process exits.
    private static func waitUntilAnswering(port: Int, process: ChildProcess) -> Bool {
        guard let probe = boundSocket(datagram: true, ipv6: false, port: 0) else { return false }
        defer { close(probe.descriptor) }
        var server = sockaddr_in()
        server.sin_family = sa_family_t(AF_INET)
        server.sin_port = in_port_t(UInt16(port).bigEndian)
        server.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        let query = readinessQuery()
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, process.isRunning {
            let sent = query.withUnsafeBytes { bytes in
                withUnsafePointer(to: &server) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(probe.descriptor, bytes.baseAddress, bytes.count, 0, $0,
                               socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            if sent == query.count {
                var descriptor = pollfd(fd: probe.descriptor, events: Int16(POLLIN), revents: 0)
                if poll(&descriptor, 1, 50) > 0 {
                    var reply = [UInt8](repeating: 0, count: 512)
                    let received = recv(probe.descriptor, &reply, reply.count, 0)
                    // Any reply with our ID (NOERROR, NXDOMAIN or REFUSED) means dnsmasq is serving.
                    if received >= 2, reply[0] == query[0], reply[1] == query[1] {
                        return true
                    }
                }
            } else {
                // ECONNREFUSED from the previous probe's ICMP: not listening yet.
                usleep(50_000)
            }
        }
        return false
    }

    /// A standard query (RFC 1035 §4.1) for "ready.petrel.test" IN A; only the reply's ID is checked.
    private static func readinessQuery() -> [UInt8] {
        let id = UInt16.random(in: 0...UInt16.max)
        var packet: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in ["ready", "petrel", "test"] {
            packet.append(UInt8(label.utf8.count))
            packet += label.utf8
        }
        packet += [0, 0, 1, 0, 1]
        return packet
    }
}

extension DNSTestServer.Record {
    /// The owner name of the record.
    public var name: String {
        switch self {
        case .mx(let domain, _, _), .nullMX(let domain), .servfail(let domain): domain
        case .a(let host, _), .aaaa(let host, _): host
        case .cname(let alias, _): alias
        case .ptr(let name, _): name
        case .txt(let name, _), .raw(let name, _, _): name
        }
    }
}

/// dnsmasq under a small guardian shell, started with posix_spawn(3) and reaped with waitpid(2).
///
/// The shell runs dnsmasq in the background and kills it as soon as its fd 3, the read end of a pipe
/// whose only write end this object holds, reaches end of file: when ``terminate()`` closes the write end,
/// and also when the test process dies in any way (a crash, an `exit` that skips deinit), so that no
/// dnsmasq outlives the tests. The shell exits when dnsmasq does, so it stands for dnsmasq's liveness.
///
/// Not Foundation's `Process`: on Linux it hands the child the spawning thread's signal mask (Swift's
/// worker threads block SIGTERM, so dnsmasq could not be stopped), and its exit monitor blocks in
/// waitpid(2) as soon as the child closes inherited descriptors, which dnsmasq does at start-up.
final class ChildProcess: Sendable {
    /// `$0` is the program, `$@` its arguments.
    private static let guardianScript = """
        "$0" "$@" 3<&- &
        child=$!
        trap 'kill -TERM $child 2>/dev/null' TERM
        { read -r _ <&3; kill -TERM $child 2>/dev/null; } &
        exec 3<&-
        wait $child
        """

    private static let spawnLock = NIOLock()

    /// The guardian shell's process ID.
    let pid: pid_t

    private struct State {
        var exited = false
        /// The write end of the guardian's pipe; -1 once closed.
        var lifeline: Int32
    }

    private let state: NIOLockedValueBox<State>

    /// Starts `executable` with stdin from /dev/null and stdout and stderr appended to `output`.
    init(executable: String, arguments: [String], output: String) throws {
        // Under the lock, no other guardian can be spawned while the new pipe's ends are inheritable.
        Self.spawnLock.lock()
        defer { Self.spawnLock.unlock() }
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else {
            throw DNSTestServer.Failure(description: "pipe: \(String(cString: strerror(errno)))")
        }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        defer { close(readEnd) }
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // dup2 clears close-on-exec on fd 3 only; both original ends close at exec.
        posix_spawn_file_actions_adddup2(&actions, readEnd, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let shell = "/bin/sh"
        let argv = ([shell, "-c", Self.guardianScript, executable] + arguments).map { strdup($0) }
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let result = (argv + [nil]).withUnsafeBufferPointer { argvPointer in
            posix_spawn(&pid, shell, &actions, &attributes, argvPointer.baseAddress!, environ)
        }
        guard result == 0 else {
            close(writeEnd)
            throw DNSTestServer.Failure(description: "could not start \(executable): \(String(cString: strerror(result)))")
        }
        self.pid = pid
        self.state = NIOLockedValueBox(State(lifeline: writeEnd))
    }

    deinit {
        self.terminate()
    }

    var isRunning: Bool {
        self.state.withLockedValue { state in
            if !state.exited {
                var status: Int32 = 0
                let reaped = waitpid(self.pid, &status, WNOHANG)
                state.exited = reaped == self.pid || (reaped < 0 && errno == ECHILD)
            }
            return !state.exited
        }
    }

    /// Has the guardian stop dnsmasq (SIGTERM) and waits for both to exit; SIGKILL after 5 s.
    func terminate() {
        self.state.withLockedValue { state in
            if state.lifeline >= 0 {
                close(state.lifeline)
                state.lifeline = -1
            }
            guard !state.exited else { return }
            let deadline = ContinuousClock.now + .seconds(5)
            var status: Int32 = 0
            while true {
                let reaped = waitpid(self.pid, &status, WNOHANG)
                if reaped == self.pid || (reaped < 0 && errno != EINTR) {
                    break
                }
                if ContinuousClock.now > deadline {
                    kill(self.pid, SIGKILL)
                    _ = waitpid(self.pid, &status, 0)
                    break
                }
                usleep(2_000)
            }
            state.exited = true
        }
    }
}
