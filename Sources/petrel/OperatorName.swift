#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Who runs the CLI, for the audit trail: the Unix user of the real user id, and under `sudo` the user
/// who ran it (`alice via sudo`). `SUDO_USER` is believed only when running as root, since only root's
/// environment comes from sudo.
enum OperatorName {
    static func current() -> String {
        let uid = getuid()
        let name = userName(uid) ?? "uid \(uid)"
        if uid == 0, let sudoUser = ProcessInfo.processInfo.environment["SUDO_USER"], !sudoUser.isEmpty, sudoUser != name {
            return "\(sudoUser) via sudo"
        }
        return name
    }

    private static func userName(_ uid: uid_t) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name else { return nil }
        return String(cString: name)
    }
}
