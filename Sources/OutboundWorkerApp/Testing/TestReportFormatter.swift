import Foundation
import PipelineKit

/// Renders test reports for people (✓/✗ with the first differences) and for CI (JUnit XML).
enum TestReportFormatter {
    static func text(_ reports: [PipelineTestRunner.FileReport]) -> String {
        var output = ""
        for report in reports {
            output += "\(report.file)\n"
            for error in report.errors { output += "  \(error)\n" }
            for testCase in report.cases {
                if testCase.passed {
                    output += "  ✓ \(testCase.name)\n"
                } else {
                    output += "  ✗ \(testCase.name)  (\(testCase.location))\n"
                    for failure in testCase.failures { output += "      \(failure)\n" }
                }
            }
        }
        return output + summary(reports) + "\n"
    }

    static func summary(_ reports: [PipelineTestRunner.FileReport]) -> String {
        let cases = reports.flatMap(\.cases)
        let passed = cases.filter(\.passed).count
        let failed = cases.count - passed + reports.filter { !$0.errors.isEmpty }.count
        return "\(passed) passed, \(failed) failed"
    }

    static func junit(_ reports: [PipelineTestRunner.FileReport]) -> String {
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n"
        for report in reports {
            let failures = report.cases.filter { !$0.passed }.count
            xml += "  <testsuite name=\"\(escape(report.file))\" tests=\"\(report.cases.count + (report.errors.isEmpty ? 0 : 1))\" failures=\"\(failures)\" errors=\"\(report.errors.isEmpty ? 0 : 1)\">\n"
            if !report.errors.isEmpty {
                xml += "    <testcase name=\"load \(escape(report.file))\"><error message=\"broken test file\">\(escape(report.errors.map(\.description).joined(separator: "\n")))</error></testcase>\n"
            }
            for testCase in report.cases {
                xml += "    <testcase name=\"\(escape(testCase.name))\" classname=\"\(escape(report.file))\" file=\"\(escape(testCase.location.file))\" line=\"\(testCase.location.line)\""
                if testCase.passed {
                    xml += "/>\n"
                } else {
                    xml += "><failure message=\"\(escape(testCase.failures.first ?? ""))\">\(escape(testCase.failures.joined(separator: "\n")))</failure></testcase>\n"
                }
            }
            xml += "  </testsuite>\n"
        }
        return xml + "</testsuites>\n"
    }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
