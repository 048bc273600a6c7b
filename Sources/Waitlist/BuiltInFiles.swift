import Foundation
import WaitlistCore
import WaitlistDelivery
import WaitlistMail
import WaitlistStore
import WaitlistWeb

/// The static files built into the installation: `Public/` of the sources, copied into the
/// resource bundle by the `BundlePublicFiles` build step.
public enum BuiltInFiles {
    /// The bundle's copy of `Public/`.
    ///
    /// - Throws: `.unavailable` when the installation lacks it (the binary was copied without its
    ///   `waitlist_Waitlist.resources` beside it).
    public static func directory() throws -> String {
        let directory = Bundle.module.resourceURL?.appendingPathComponent("Public")
        var isDirectory: ObjCBool = false
        guard let directory, FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue
        else {
            throw WaitlistError(
                .unavailable, "The static files are missing from the installation (Public in waitlist_Waitlist.resources).")
        }
        return directory.path
    }
}

extension Settings {
    /// Where the static files are served from: `WAITLIST_PUBLIC_DIR` when set, else the installation's.
    public func staticFilesDirectory() throws -> String {
        try publicDirectory ?? BuiltInFiles.directory()
    }
}

extension Templates {
    /// Loads the Mustache templates of pages and mails from the installation's resource bundle.
    public static func load() async throws -> Templates {
        guard let directory = Bundle.module.resourceURL?.appendingPathComponent("Templates").path else {
            throw WaitlistError(.unavailable, "The templates are missing from the installation (waitlist_Waitlist.resources).")
        }
        return try await load(directory: directory)
    }
}
