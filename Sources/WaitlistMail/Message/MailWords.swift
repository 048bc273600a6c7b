import WaitlistCore
/// The words of the mails that are not in their templates, the subjects, in one language: one
/// value per language (``russian``, ``english``), so a subject missing from a language does not
/// compile.
struct MailWords: Sendable {
    /// The confirmation's subject for a course's title.
    let confirmationSubject: @Sendable (_ course: String) -> String
    /// The announcement's subject for a course's title and its start as people read it.
    let announcementSubject: @Sendable (_ course: String, _ date: String) -> String

    /// The words of a language.
    static func of(_ language: Language) -> MailWords {
        switch language {
        case .ru: russian
        case .en: english
        }
    }

    /// The mails in Russian.
    static let russian = MailWords(
        confirmationSubject: { course in "Подтвердите подписку на курс «\(course)»" },
        announcementSubject: { course, date in "Открыта запись на курс «\(course)»: старт \(date)" })

    /// The mails in English.
    static let english = MailWords(
        confirmationSubject: { course in "Please confirm: news of “\(course)”" },
        announcementSubject: { course, date in "Enrolment is open: “\(course)” starts \(date)" })

    /// The subject of `waitlist test-mail`, which speaks both languages.
    static let testSubject = "Waitlist: test message / проверка почты"
}
