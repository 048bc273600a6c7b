import ArgumentParser
import Foundation
import Logging
import Waitlist
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// `waitlist`: the service and its operator's commands, all reading the same settings.
@main
struct WaitlistCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "waitlist",
        abstract: "Keeps a course's \"notify me\" promise: signups with double opt-in, and one announcement when enrolment opens.",
        discussion: """
            Settings come from WAITLIST_* environment variables and the file WAITLIST_CONFIG names \
            (/etc/waitlist/waitlist.env when it exists); the environment wins. See the README.
            """,
        subcommands: [
            Serve.self, OpenEnrolment.self, CloseEnrolment.self, Send.self, Status.self, CourseCommand.self, Export.self, Forget.self,
            Backup.self, TestMail.self, DKIMRecord.self, DKIMKeygen.self, Bounce.self,
        ])

    /// Every command starts here: the umask is set before anything is opened, so that what SQLite
    /// makes by itself (the database's `-wal` and `-shm`) is 0660 like the rest, whatever umask the
    /// shell or unit had (see ``StateFiles``); then the arguments are parsed and the command run.
    static func main() async {
        StateFiles.restrictUmask()
        await main(nil)
    }
}

/// The `--course` option shared by the commands that act on one course.
struct CourseOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The course's slug; may be left out when there is only one course.", valueName: "slug"))
    var course: String?
}

/// The contract's exit codes.
enum ExitStatus {
    static let usage = ExitCode(64)
    static let data = ExitCode(65)
    static let unavailable = ExitCode(69)
    static let software = ExitCode(70)
    static let tryLater = ExitCode(75)
}

/// Reads the settings, starts logging and opens the runtime, then runs `body`; any failure is
/// printed as one sentence on stderr and turned into the contract's exit code. `signsMail`: the
/// command sends mail, so its DKIM keys are read first (a bad one: exit 65).
func withRuntime(signsMail: Bool = false, _ body: (Runtime) async throws -> Void) async throws {
    do {
        let settings = try Settings(environment: ConfigFile.environment(merging: ProcessInfo.processInfo.environment))
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = settings.logLevel
            return handler
        }
        let runtime = try await Runtime.start(settings: settings, logger: Logger(label: "waitlist"), signsMail: signsMail)
        try await body(runtime)
    } catch let error as ExitCode {
        throw error
    } catch let error as SettingsError {
        printError(error.description)
        throw ExitStatus.usage
    } catch let error as WaitlistError {
        printError(error.message)
        throw exitCode(for: error)
    } catch let error where AppDatabase.isStorageFailure(error) {
        // Never the SQL: what SQLite said, and the contract's code for it.
        let damaged = AppDatabase.isDamage(error)
        printError(
            damaged
                ? "The database is damaged (\(AppDatabase.describe(error))); restore it from a backup."
                : "The database did not answer: \(AppDatabase.describe(error)).")
        throw damaged ? ExitStatus.data : ExitStatus.unavailable
    } catch {
        printError("waitlist failed: \(error).")
        throw ExitStatus.software
    }
}

/// The exit code for an operational error.
func exitCode(for error: WaitlistError) -> ExitCode {
    switch error.kind {
    case .usage: ExitStatus.usage
    case .data, .notFound: ExitStatus.data
    case .unavailable: ExitStatus.unavailable
    }
}

/// Writes one line to standard error.
/// Prints a line on stdout at once, also when stdout is a pipe or a file (where `print` waits for a
/// full buffer): for the lines that come before a delivery that may run for hours.
func printNow(_ line: String) {
    print(line)
    fflush(nil)  // every output stream: naming `stdout` is not concurrency-safe in Swift 6
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// True when the stream is a terminal (a person is watching).
func isTerminal(_ descriptor: Int32) -> Bool {
    isatty(descriptor) == 1
}
