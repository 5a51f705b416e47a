import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes whole log lines to standard error: one `write(2)` per line, under a lock, so lines from
/// concurrent tasks never interleave (a pipe keeps a write of up to PIPE_BUF bytes whole against other
/// processes too).
///
/// When standard error is the journal's stream (`$JOURNAL_STREAM` names its device and inode, as systemd
/// sets it), each line starts with `<priority>`, which journald turns into the entry's priority and strips.
final class StandardErrorWriter: Sendable {
    static let shared = StandardErrorWriter(descriptor: STDERR_FILENO)

    private let descriptor: Int32
    private let lock = NSLock()
    private let isJournal: Bool

    init(descriptor: Int32) {
        self.descriptor = descriptor
        self.isJournal = Self.isJournalStream(descriptor)
    }

    /// Writes `line` and a newline. `priority` is the syslog priority (0 to 7), used for the journal.
    func writeLine(_ line: String, priority: Int) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(line.utf8.count + 4)
        if isJournal {
            bytes.append(contentsOf: "<\(priority)>".utf8)
        }
        bytes.append(contentsOf: line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        lock.withLock {
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                    if written > 0 {
                        offset += written
                    } else if written < 0 && (errno == EINTR || errno == EAGAIN) {
                        continue
                    } else {
                        return  // standard error is gone; logging must not stop the relay
                    }
                }
            }
        }
    }

    /// `$JOURNAL_STREAM` is `device:inode` of the stream systemd connected; it is inherited, so it counts
    /// only when it still names this descriptor.
    private static func isJournalStream(_ descriptor: Int32) -> Bool {
        guard let value = getenv("JOURNAL_STREAM") else { return false }
        let parts = String(cString: value).split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }
}
