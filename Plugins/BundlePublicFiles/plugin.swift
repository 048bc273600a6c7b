import Foundation
import PackagePlugin

/// Copies the package's top-level `Public/` folder (styles, scripts, icons) into the build, where
/// SwiftPM puts it into the `Waitlist` target's resource bundle as `Public/`.
///
/// SwiftPM bundles only resources under a target's own folder, and copies a symbolic link there as
/// a link (which then points nowhere beside an installed binary), so the files are copied by a build
/// command instead. The command's inputs are the folder's files, so a changed, added or removed file
/// copies the folder again on the next build.
@main
struct BundlePublicFiles: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
        let source = context.package.directoryURL.appending(path: "Public")
        let output = context.pluginWorkDirectoryURL.appending(path: "Public")
        let names = try FileManager.default.contentsOfDirectory(atPath: source.path).filter { !$0.hasPrefix(".") }.sorted()
        return [
            .buildCommand(
                displayName: "Copying Public/ into the resource bundle",
                executable: URL(fileURLWithPath: "/bin/sh"),
                // $0: the source folder, $1: the copy, replaced whole so that removed files go too.
                arguments: ["-c", #"rm -rf "$1" && cp -R "$0" "$1""#, source.path, output.path],
                inputFiles: [source] + names.map { source.appending(path: $0) },
                outputFiles: [output])
        ]
    }
}
