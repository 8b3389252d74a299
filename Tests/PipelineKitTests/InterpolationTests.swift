import PipelineKit
import Testing

@Suite struct InterpolationTests {
    let interpolator = Interpolator(environment: ["SET": "value", "EMPTY": "", "N": "42"])

    @Test func substitutesVariables() throws {
        #expect(try interpolator.expand("a-${SET}-b").get().text == "a-value-b")
        #expect(try interpolator.expand("${N}").get().setVariable == "N")
    }

    @Test func defaultsApplyWhenUnsetOrEmpty() throws {
        #expect(try interpolator.expand("${MISSING:-fallback}").get().text == "fallback")
        #expect(try interpolator.expand("${EMPTY:-fallback}").get().text == "fallback")
        #expect(try interpolator.expand("${SET:-fallback}").get().text == "value")
        #expect(try interpolator.expand("${MISSING:-}").get().text == "")
        #expect(try interpolator.expand("${MISSING:-}").get().setVariable == nil)
    }

    @Test func requiredVariableMessage() {
        #expect(throws: Interpolator.Problem(message: "environment variable MISSING is not set: give the token")) {
            try interpolator.expand("${MISSING:?give the token}").get()
        }
        #expect((try? interpolator.expand("${EMPTY:?x}").get()) == nil)
    }

    /// A secret written in the file with a `${` in it was quoted whole in the error, which `check`,
    /// a start and a SIGHUP print or log.
    @Test func anUnterminatedReferenceDoesNotQuoteTheValue() {
        guard case .failure(let problem) = interpolator.expand("Xy${9k-secret") else { Issue.record("expected a failure"); return }
        #expect(!problem.message.contains("secret"), "\(problem.message)")
        #expect(problem.message.contains("unterminated `${` at character 3 of the value"), "\(problem.message)")
        guard case .failure(let invalid) = interpolator.expand("p${a b-secret}q") else { Issue.record("expected a failure"); return }
        #expect(!invalid.message.contains("secret"), "\(invalid.message)")
        #expect(invalid.message.contains("the `${…}` at character 2 of the value is not a variable reference"), "\(invalid.message)")
    }

    @Test func unsetVariableWithoutDefaultIsAnError() {
        let result = interpolator.expand("${MISSING}")
        guard case .failure(let problem) = result else { Issue.record("expected a failure"); return }
        #expect(problem.message.contains("MISSING is not set"))
    }

    @Test func doubleDollarIsALiteral() throws {
        #expect(try interpolator.expand("cost $${SET} and $5").get().text == "cost ${SET} and $5")
    }

    @Test func malformedReferences() {
        #expect((try? interpolator.expand("${UNCLOSED").get()) == nil)
        #expect((try? interpolator.expand("${1BAD}").get()) == nil)
        #expect((try? interpolator.expand("${}").get()) == nil)
    }

    @Test func commentsAreNeverInterpolated() {
        let result = Fixtures.load(Fixtures.pipeline + "\n# ${NOT_SET_ANYWHERE} in a comment\n")
        #expect(result.definition != nil)
        #expect(!result.diagnostics.hasErrors)
    }
}
