import GRDB
import GRDBSQLite
import WaitlistCore

/// A statement of GRDB's cache, bound and stepped through SQLite's own interface, for the few
/// statements that run for every request (a signup's). GRDB's arguments box every value and its
/// rows are objects: a profile of the signup writer put about a quarter of its time in reference
/// counting and allocation, most of it there. (Writer thread CPU per signup after the change,
/// alternating pairs: 46–57 µs against 56–71 µs, within the machine's noise: bench/README.md.)
///
/// Runs only inside a transaction of GRDB's (its rollback and commit stay GRDB's), on the
/// connection that prepared it; each use begins with ``reset()``'s state: bind every parameter,
/// step, read the row's columns before the next step.
struct SteppedStatement {
    private let statement: Statement
    private var handle: SQLiteStatement { statement.sqliteStatement }

    init(_ db: Database, sql: String) throws {
        statement = try db.cachedStatement(sql: sql)
    }

    func bind(_ value: Int64, at index: Int32) {
        sqlite3_bind_int64(handle, index, value)
    }

    func bind(_ value: Bool, at index: Int32) {
        sqlite3_bind_int64(handle, index, value ? 1 : 0)
    }

    /// Binds the text's exact UTF-8 bytes (SQLite copies them), or NULL.
    func bind(_ value: String?, at index: Int32) {
        guard var value else {
            sqlite3_bind_null(handle, index)
            return
        }
        value.withUTF8 { bytes in
            _ = bytes.withMemoryRebound(to: CChar.self) { text in
                sqlite3_bind_text(handle, index, text.baseAddress, Int32(text.count), Self.transient)
            }
        }
    }

    /// Binds the bytes as a blob (SQLite copies them).
    func bind(_ bytes: [UInt8], at index: Int32) {
        bytes.withUnsafeBytes { buffer in
            _ = sqlite3_bind_blob(handle, index, buffer.baseAddress, Int32(buffer.count), Self.transient)
        }
    }

    /// Runs the statement to its first row: `true` with the row's columns to read, `false` when it
    /// is done.
    ///
    /// - Throws: `DatabaseError` with SQLite's code and message when the statement fails.
    func step(_ db: Database) throws -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code:
            let message = String(cString: sqlite3_errmsg(db.sqliteConnection))
            sqlite3_reset(handle)
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
        }
    }

    /// Runs the statement to its end.
    func run(_ db: Database) throws {
        while try step(db) {}
    }

    func int64(at column: Int32) -> Int64 {
        sqlite3_column_int64(handle, column)
    }

    /// The column's text; `nil` for NULL.
    func text(at column: Int32) -> String? {
        guard let text = sqlite3_column_text(handle, column) else { return nil }
        return String(decoding: UnsafeBufferPointer(start: text, count: Int(sqlite3_column_bytes(handle, column))), as: UTF8.self)
    }

    /// Ends the statement's run and unbinds its parameters, as a statement in GRDB's cache is left.
    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// SQLite's `SQLITE_TRANSIENT`: it copies what is bound.
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
}
