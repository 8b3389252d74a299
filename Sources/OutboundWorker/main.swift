import Foundation
import OutboundWorkerApp

exit(await RootCommand.main(arguments: Array(CommandLine.arguments.dropFirst())))
