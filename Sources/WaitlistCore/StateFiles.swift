import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Who may read and change what the service and its commands write: one rule for every file they
/// create, whatever the umask of the shell or unit that started them.
///
/// - The database, its `-wal` and `-shm`, `waitlist backup` copies and the file transport's `.eml`
///   files: ``dataMode`` (0660), owner and group. The database holds the keys of bounce tags and
///   form stamps, so whoever can read a copy can bounce any subscriber: nothing is ever readable by
///   others.
/// - DKIM private keys: ``keyMode`` (0640); the service reads them, only their owner changes them.
/// - Folders made for the service's state (the database's folder, the mail folder): ``folderMode``
///   (2770). The setgid bit gives whatever is made inside the folder's group, so a file that an
///   instructor's command makes (run as a member of the group) stays usable by the service.
/// - When a group ``groupName`` exists, every new file and folder is given it.
///
/// How the modes are made sure of, in three places that each cover what the others cannot:
/// - The process umask is set to ``processUmask`` (0007) first thing in the command line's `main`
///   (``restrictUmask()``). It is the only thing that reaches the files SQLite creates by itself:
///   it makes `-wal` and `-shm` (and a backup's journal) with the database file's permission bits
///   masked by the umask, long after any call of ours returned, and it deletes and makes them again
///   as connections come and go.
///   Without it, a command run by a member of the group under the usual umask 0022 while the
///   service is stopped would make a `-wal` 0640 of its own, which the service could not write.
/// - Files and folders made here (``createFile(atPath:mode:)``, ``createFolder(atPath:)``: backups,
///   mail files, DKIM keys) get their mode from `fchmod`, which no umask masks: right also in a
///   process whose umask was not set (a test, the library used on its own).
/// - After the database is opened, ``settle(fileAt:mode:)`` brings the database, `-wal` and `-shm`
///   to 0660 when this process owns them: SQLite makes a new database 0644 masked by the umask
///   (0640 under the commands' umask), and a file made by an older version or under another umask is mended too.
public enum StateFiles {
    /// The database, its `-wal` and `-shm`, backups and mail files: read and written by the owner and
    /// the group, nobody else.
    public static let dataMode: mode_t = 0o660
    /// DKIM private keys: written by their owner, read by the group (the service).
    public static let keyMode: mode_t = 0o640
    /// Folders made for the service's state: the owner and the group, setgid so that what is made
    /// inside keeps the folder's group.
    public static let folderMode: mode_t = 0o2770
    /// The umask every command runs with: nothing made, by us or by SQLite, is readable by others,
    /// and the group gets what the owner gets.
    public static let processUmask: mode_t = 0o007
    /// The group that the service runs as and that the instructor is a member of.
    public static let groupName = "waitlist"

    /// A file or folder that could not be made or given its mode: the system's reason, and its code
    /// (`EEXIST` for a file that is there already).
    public struct Failure: Error, CustomStringConvertible, Sendable {
        /// The `errno` of the call that failed.
        public let code: Int32
        /// What failed, naming the path, and why.
        public let description: String

        /// - Parameter code: the `errno` of the call that failed, read before anything else can change it.
        init(_ code: Int32, _ what: String) {
            self.code = code
            self.description = "\(what): \(String(cString: strerror(code)))"
        }
    }

    // MARK: - The process

    /// Sets the process umask to ``processUmask``, whatever it was: call it once, before anything is
    /// opened or created (the command line's `main` does).
    public static func restrictUmask() {
        umask(processUmask)
    }

    // MARK: - New files and folders

    /// Creates a new file at `path` with exactly `mode` and the group ``groupName`` (when it exists
    /// and this process may give it), and returns its descriptor, open for writing; the caller closes
    /// it. An existing file is never touched (`O_EXCL`: the failure's code is then `EEXIST`). When
    /// the mode cannot be set, the new file is removed again and the failure thrown.
    public static func createFile(atPath path: String, mode: mode_t) throws(Failure) -> Int32 {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw Failure(errno, "\(path) cannot be created") }
        do throws(Failure) {
            try giveGroup(descriptor: descriptor, path: path)
            // The umask masked the mode `open` was given; `fchmod` is not masked.
            guard fchmod(descriptor, mode) == 0 else { throw Failure(errno, "the mode of \(path) cannot be set to \(octal(mode))") }
        } catch {
            close(descriptor)
            unlink(path)
            throw error
        }
        return descriptor
    }

    /// ``createFile(atPath:mode:)``, closed at once: an empty file for SQLite to fill (a backup).
    public static func createEmptyFile(atPath path: String, mode: mode_t) throws(Failure) {
        close(try createFile(atPath: path, mode: mode))
    }

    /// Creates the folder at `path` and every missing folder above it, each ``folderMode`` with the
    /// group ``groupName`` (when it exists and this process may give it). An existing folder is left
    /// as it is; a file in the way is a failure. A folder made here whose mode cannot be set is
    /// removed again and the failure thrown.
    public static func createFolder(atPath path: String) throws(Failure) {
        var missing: [String] = []
        var folder = URL(fileURLWithPath: path).standardizedFileURL
        while !isFolder(atPath: folder.path) {
            guard !FileManager.default.fileExists(atPath: folder.path) else {
                throw Failure(ENOTDIR, "\(folder.path) is in the way")
            }
            missing.append(folder.path)
            let parent = folder.deletingLastPathComponent()
            guard parent.path != folder.path else { break }
            folder = parent
        }
        for folder in missing.reversed() {
            guard mkdir(folder, 0o770) == 0 else {
                if errno == EEXIST, isFolder(atPath: folder) { continue }  // made meanwhile by another process
                throw Failure(errno, "\(folder) cannot be created")
            }
            try settleNewFolder(atPath: folder)
        }
    }

    /// Gives a folder just made its group and ``folderMode``; removes it (it is empty) when that fails.
    private static func settleNewFolder(atPath path: String) throws(Failure) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        do throws(Failure) {
            guard descriptor >= 0 else { throw Failure(errno, "\(path) cannot be opened") }
            defer { close(descriptor) }
            // The group first: a change of group may clear the setgid bit.
            try giveGroup(descriptor: descriptor, path: path)
            var status = stat()
            guard fstat(descriptor, &status) == 0 else { throw Failure(errno, "\(path) cannot be examined") }
            // Linux ignores the setgid bit in `mkdir`'s mode; a folder made inside a setgid folder
            // inherits it. Where it is there already nothing is changed, so the service, whose
            // sandbox (`RestrictSUIDSGID=`) refuses setting the bit, works inside its setgid state folder.
            if status.st_mode & 0o7777 != folderMode {
                guard fchmod(descriptor, folderMode) == 0 else {
                    throw Failure(errno, "the mode of \(path) cannot be set to \(octal(folderMode))")
                }
            }
        } catch {
            rmdir(path)
            throw error
        }
    }

    // MARK: - Files SQLite made

    /// Gives an existing regular file at `path` that this process's user owns exactly `mode` and the
    /// group ``groupName``; a missing file, or one of another user (which only its owner may change),
    /// is left as it is.
    ///
    /// It works by path, never by opening the file: closing any descriptor of a file drops every
    /// POSIX lock this process holds on it, SQLite's included.
    public static func settle(fileAt path: String, mode: mode_t) throws(Failure) {
        var status = stat()
        guard lstat(path, &status) == 0 else {
            if errno == ENOENT { return }
            throw Failure(errno, "\(path) cannot be examined")
        }
        guard status.st_mode & S_IFMT == S_IFREG, status.st_uid == geteuid() else { return }
        if let group = waitlistGroup(), status.st_gid != group, chown(path, uid_t.max, group) != 0 {
            try allowRefusedChown(path: path)
        }
        if status.st_mode & 0o7777 != mode {
            guard chmod(path, mode) == 0 else { throw Failure(errno, "the mode of \(path) cannot be set to \(octal(mode))") }
        }
    }

    // MARK: - The group

    /// Gives the open file or folder the group ``groupName`` when that group exists and it has
    /// another; the owner stays (`-1`).
    private static func giveGroup(descriptor: Int32, path: String) throws(Failure) {
        guard let group = waitlistGroup() else { return }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw Failure(errno, "\(path) cannot be examined") }
        if status.st_gid != group, fchown(descriptor, uid_t.max, group) != 0 {
            try allowRefusedChown(path: path)
        }
    }

    /// Decides about a `chown` to the group that failed, with its `errno` still set. `EPERM` is no
    /// failure: only root and members of the group may give it, and the service's own sandbox
    /// refuses `chown` (`SystemCallFilter=~@privileged`); the file then keeps its maker's group,
    /// which the service runs as or the folder's setgid bit gave, and its mode still keeps others
    /// out. Any other reason is thrown.
    private static func allowRefusedChown(path: String) throws(Failure) {
        let code = errno
        guard code == EPERM else { throw Failure(code, "\(path) cannot be given the group \(groupName)") }
    }

    /// The id of the group ``groupName``, or `nil` where there is none.
    private static func waitlistGroup() -> gid_t? {
        var entry = group()
        var found: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 4_096)
        // ERANGE: the entry (its list of members) does not fit; look again with more room.
        while getgrnam_r(groupName, &entry, &buffer, buffer.count, &found) == ERANGE {
            buffer = [CChar](repeating: 0, count: buffer.count * 2)
        }
        return found != nil ? entry.gr_gid : nil
    }

    private static func isFolder(atPath path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    private static func octal(_ mode: mode_t) -> String {
        "0" + String(mode, radix: 8)
    }
}
