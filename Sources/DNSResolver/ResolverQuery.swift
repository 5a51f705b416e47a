import CResolv

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How to reach the name servers, as given to `SystemResolver`.
struct ResolverConfiguration: Sendable {
    /// Empty: those of /etc/resolv.conf, as res_ninit(3) reads them.
    var servers: [(host: String, port: Int)]
    /// The resolver's `retrans`: seconds to wait for the first try (res_send doubles it on later tries).
    var timeoutSeconds: Int32
    /// The resolver's `retry`: how many times each server is tried.
    var attempts: Int32
}

/// A definite answer and how long it may be cached; `nil` when the cache's negative TTL applies.
struct QueryAnswer: Sendable {
    var answer: Answer
    var timeToLive: Duration?
}

/// The largest DNS message (RFC 1035 §4.2.2: TCP length prefix is 16 bits).
private let answerBufferSize = 65_535

/// Records whose TTL has the top bit set are treated as having a TTL of zero (RFC 2181 §8).
private let largestTTL: UInt32 = 0x7FFF_FFFF

/// Asks the name servers for the `type` records of `name`, blocking the calling thread until the answer
/// comes or the resolver gives up. Run it on a thread pool, never on an event loop or Swift's
/// cooperative pool.
///
/// Uses a private `struct __res_state` (res_ninit(3)), never the process-wide `_res`, so any number of
/// threads can call this at once. res_nquery(3) does no search-list processing: `name` is taken as fully
/// qualified. The answer is read with ns_initparse(3), ns_parserr(3) and dn_expand(3).
///
/// - Throws: ``DNSError`` for a temporary failure (SERVFAIL, REFUSED, timeouts, unusable answers).
func blockingQuery(name: String, type: RecordType, configuration: ResolverConfiguration) throws -> QueryAnswer {
    func failure(_ reason: String) -> DNSError {
        DNSError(domain: name, type: type.description, reason: reason)
    }

    let state = UnsafeMutablePointer<__res_state>.allocate(capacity: 1)
    state.initialize(to: __res_state())
    defer {
        state.deinitialize(count: 1)
        state.deallocate()
    }
    guard petrel_res_ninit(state) == 0 else {
        throw failure("could not initialise the resolver (res_ninit failed)")
    }
    defer { petrel_res_nclose(state) }

    if !configuration.servers.isEmpty {
        var addresses: [sockaddr_storage] = []
        for server in configuration.servers {
            guard let address = socketAddress(host: server.host, port: server.port) else {
                throw failure("unusable name server \(server.host) port \(server.port)")
            }
            addresses.append(address)
        }
        guard petrel_res_set_nameservers(state, addresses, Int32(addresses.count)) == 0 else {
            throw failure("could not configure the name servers")
        }
    }
    state.pointee.retrans = configuration.timeoutSeconds
    state.pointee.retry = configuration.attempts

    let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: answerBufferSize)
    defer { buffer.deallocate() }
    let queryType: ns_type
    switch type {
    case .mx: queryType = ns_t_mx
    case .a: queryType = ns_t_a
    case .aaaa: queryType = ns_t_aaaa
    case .ptr: queryType = ns_t_ptr
    }
    let length = res_nquery(
        state, name, Int32(ns_c_in.rawValue), Int32(queryType.rawValue), buffer, Int32(answerBufferSize)
    )
    guard length >= 0 else {
        // res_nquery hides the response unless its RCODE is NOERROR with answers; h_errno says why.
        switch state.pointee.res_h_errno {
        case HOST_NOT_FOUND:
            // RCODE 3, NXDOMAIN: the name does not exist (RFC 1035 §4.1.1, RFC 2308 §2.1).
            return QueryAnswer(answer: .nonexistentDomain, timeToLive: nil)
        case NO_DATA:
            // NOERROR without answers: the name exists but has no such records (RFC 2308 §2.2).
            return QueryAnswer(answer: .noRecords, timeToLive: nil)
        case TRY_AGAIN:
            // res_send moves on from SERVFAIL and REFUSED answers as from silent servers: when no server
            // answered usefully, res_nquery reports TRY_AGAIN.
            throw failure("no usable answer from the name servers: timeout, SERVFAIL or REFUSED (TRY_AGAIN)")
        case NO_RECOVERY:
            throw failure("the name servers could not process the query (NO_RECOVERY: FORMERR or NOTIMP)")
        case let code:
            throw failure("resolver error (h_errno \(code), errno \(errno))")
        }
    }
    return try parseAnswer(buffer, length: min(Int(length), answerBufferSize), type: type, failure: failure)
}

/// Reads the records of `type` from the answer section of a response (RFC 1035 §4.1), with their
/// smallest TTL (an RRset has a single TTL, RFC 2181 §5.2; CNAMEs on the way count too).
private func parseAnswer(
    _ buffer: UnsafePointer<UInt8>,
    length: Int,
    type: RecordType,
    failure: (String) -> DNSError
) throws -> QueryAnswer {
    var message = ns_msg()
    guard ns_initparse(buffer, Int32(length), &message) == 0 else {
        throw failure("malformed response")
    }
    let rcode = ns_msg_getflag(message, Int32(ns_f_rcode.rawValue))
    switch UInt32(rcode) {
    case ns_r_noerror.rawValue:
        break
    case ns_r_nxdomain.rawValue:
        return QueryAnswer(answer: .nonexistentDomain, timeToLive: nil)
    default:
        throw failure("the name server answered RCODE \(rcode)")
    }

    var smallestTTL = largestTTL
    var exchangers: [MXRecord] = []
    var addresses: [String] = []
    var names: [String] = []
    let count = petrel_ns_msg_count(&message, ns_s_an)
    for index in 0..<count {
        var record = ns_rr()
        guard ns_parserr(&message, ns_s_an, index, &record) == 0 else {
            throw failure("malformed record in the response")
        }
        guard record.rr_class == UInt16(ns_c_in.rawValue) else { continue }
        let recordTTL = record.ttl > largestTTL ? 0 : record.ttl
        switch (type, UInt32(record.type)) {
        case (_, ns_t_cname.rawValue):
            smallestTTL = min(smallestTTL, recordTTL)
        case (.mx, ns_t_mx.rawValue):
            exchangers.append(try mailExchanger(record, in: message, failure: failure))
            smallestTTL = min(smallestTTL, recordTTL)
        case (.a, ns_t_a.rawValue):
            addresses.append(try addressText(record, family: AF_INET, size: 4, failure: failure))
            smallestTTL = min(smallestTTL, recordTTL)
        case (.aaaa, ns_t_aaaa.rawValue):
            addresses.append(try addressText(record, family: AF_INET6, size: 16, failure: failure))
            smallestTTL = min(smallestTTL, recordTTL)
        case (.ptr, ns_t_ptr.rawValue):
            guard let rdata = record.rdata else { throw failure("malformed PTR record") }
            names.append(try domainName(at: rdata, in: message, failure: { failure("malformed PTR name") }))
            smallestTTL = min(smallestTTL, recordTTL)
        default:
            continue
        }
    }
    let timeToLive = Duration.seconds(Int64(smallestTTL))
    switch type {
    case .mx where !exchangers.isEmpty:
        return QueryAnswer(answer: .mailExchangers(exchangers), timeToLive: timeToLive)
    case .a where !addresses.isEmpty, .aaaa where !addresses.isEmpty:
        return QueryAnswer(answer: .addresses(addresses), timeToLive: timeToLive)
    case .ptr where !names.isEmpty:
        return QueryAnswer(answer: .names(names), timeToLive: timeToLive)
    default:
        // Only a CNAME (or records of other types): the name has no records of this type.
        return QueryAnswer(answer: .noRecords, timeToLive: nil)
    }
}

/// MX RDATA: a 16-bit preference and a possibly compressed domain name (RFC 1035 §3.3.9, §4.1.4).
private func mailExchanger(_ record: ns_rr, in message: ns_msg, failure: (String) -> DNSError) throws -> MXRecord {
    guard let rdata = record.rdata, record.rdlength >= 3 else {
        throw failure("malformed MX record")
    }
    let preference = UInt16(truncatingIfNeeded: ns_get16(rdata))
    let exchange = try domainName(at: rdata + 2, in: message, failure: { failure("malformed MX exchange name") })
    return MXRecord(preference: preference, exchange: exchange)
}

/// A possibly compressed domain name in RDATA (RFC 1035 §4.1.4), lowercased, without the trailing dot; the
/// root is "".
private func domainName(at start: UnsafePointer<UInt8>, in message: ns_msg, failure: () -> DNSError) throws -> String {
    var name = [CChar](repeating: 0, count: Int(NS_MAXDNAME))
    guard dn_expand(message._msg, message._eom, start, &name, Int32(name.count)) > 0 else {
        throw failure()
    }
    // dn_expand writes the root as "" and other names without the trailing dot.
    var text = name.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.lowercased()
    if text.hasSuffix(".") {
        text.removeLast()
    }
    return text
}

/// A and AAAA RDATA: the address in network byte order (RFC 1035 §3.4.1, RFC 3596 §2.2).
private func addressText(_ record: ns_rr, family: Int32, size: Int, failure: (String) -> DNSError) throws -> String {
    guard let rdata = record.rdata, Int(record.rdlength) == size else {
        throw failure("malformed \(family == AF_INET ? "A" : "AAAA") record")
    }
    var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
    guard inet_ntop(family, rdata, &text, socklen_t(text.count)) != nil else {
        throw failure("unprintable address")
    }
    return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
