import WaitlistCore
import WaitlistStore
/// The words of every page in one language: one stored property per word, one value per language
/// (``russian``, ``english``), so a word missing from a language does not compile.
///
/// Mail bodies are whole templates per language (`Resources/Templates/mail`) and their subjects are
/// ``MailWords``; pages share one template each and take their words from here (as `t.NAME`), so
/// the two languages cannot drift apart in layout.
struct PageWords: Sendable {
    let lang: String
    let otherLanguage: String
    let otherLang: String
    /// The quotation marks around a course's title: «» in Russian, “” in English.
    let openQuote: String
    let closeQuote: String
    let notifyLead: String
    let noSpam: String
    let privacyLink: String
    let staleForm: String
    let noSuchCourse: String
    let chooseCourse: String
    let emailLabel: String
    let emailPlaceholder: String
    let notifyButton: String
    let openLead: String
    let startsOn: String
    let enrolButton: String
    let coursesTitle: String
    let checkInboxTitle: String
    let checkInboxText: String
    let checkInboxHint: String
    let backToCourse: String
    /// The check-inbox page's link to a fresh form.
    let wrongAddress: String
    let confirmTitle: String
    let confirmText: String
    let confirmButton: String
    let confirmedTitle: String
    let confirmedText: String
    let alreadyConfirmedText: String
    let expiredTitle: String
    let expiredText: String
    let unknownLinkTitle: String
    let unknownLinkText: String
    let signUpAgain: String
    let unsubscribeTitle: String
    let unsubscribeText: String
    let unsubscribeButton: String
    let unsubscribedTitle: String
    let unsubscribedText: String
    let errorTitle: String
    let notFoundTitle: String
    let notFoundText: String
    let badRequestText: String
    let tooManyTitle: String
    let tooManyText: String
    let tooLargeText: String
    let serverErrorText: String
    let unavailableTitle: String
    let unavailableText: String
    /// Why an address typed in the form was refused.
    let invalidEmail: InvalidEmailWords

    /// What the form says about an address it refuses, one sentence per ``EmailAddress/Problem``.
    struct InvalidEmailWords: Sendable {
        let empty: String
        let tooLong: String
        let missingAt: String
        let badLocalPart: String
        let localPartTooLong: String
        let badDomain: String
        let invisibleCharacter: String

        /// The sentence for a problem; the switch names every case, so a new one needs its words.
        func message(for problem: EmailAddress.Problem) -> String {
            switch problem {
            case .empty: empty
            case .tooLong: tooLong
            case .missingAt: missingAt
            case .badLocalPart: badLocalPart
            case .localPartTooLong: localPartTooLong
            case .badDomain: badDomain
            case .invisibleCharacter: invisibleCharacter
            }
        }
    }

    /// The words of a language.
    static func of(_ language: Language) -> PageWords {
        switch language {
        case .ru: russian
        case .en: english
        }
    }

    /// The words as the page templates read them (`t.NAME`), made once per language.
    static func templateContext(_ language: Language) -> [String: String] {
        switch language {
        case .ru: russianContext
        case .en: englishContext
        }
    }

    private static let russianContext = russian.dictionary
    private static let englishContext = english.dictionary

    /// Every word stored as a string property, by its name.
    var dictionary: [String: String] {
        Dictionary(
            uniqueKeysWithValues: Mirror(reflecting: self).children.compactMap { child in
                (child.value as? String).map { (child.label ?? "", $0) }
            })
    }

    /// The pages in Russian.
    static let russian = PageWords(
        lang: "ru",
        otherLanguage: "English",
        otherLang: "en",
        openQuote: "«",
        closeQuote: "»",
        notifyLead: "Дата следующего потока пока не известна. Оставьте адрес — мы напишем, когда откроется запись.",
        noSpam: "Одно письмо, чтобы подтвердить адрес, и одно, когда откроется запись. Без спама.",
        privacyLink: "Как мы обращаемся с вашими данными",
        staleForm: "Страница была открыта долго, и форма устарела. Проверьте адрес и отправьте её ещё раз.",
        noSuchCourse: "Такого курса нет. Откройте страницу курса и оставьте адрес там.",
        chooseCourse: "Курсов несколько: откройте страницу нужного курса и оставьте адрес там.",
        emailLabel: "Электронная почта",
        emailPlaceholder: "name@example.com",
        notifyButton: "Сообщите мне",
        openLead: "Запись открыта!",
        startsOn: "Начало занятий:",
        enrolButton: "Записаться на курс",
        coursesTitle: "Курсы",
        checkInboxTitle: "Проверьте почту",
        checkInboxText:
            "Если адрес верный, мы отправили на него письмо со ссылкой для подтверждения. Откройте его и нажмите «Подтвердить» — без этого мы ничего больше не пришлём.",
        checkInboxHint: "Письма нет? Загляните в папку «Спам» или отправьте форму ещё раз завтра.",
        backToCourse: "Вернуться к курсу",
        wrongAddress: "Ошиблись в адресе? Введите его ещё раз",
        confirmTitle: "Подтвердите подписку",
        confirmText: "Нажмите кнопку, чтобы мы написали вам, когда откроется запись на курс:",
        confirmButton: "Подтвердить",
        confirmedTitle: "Подписка подтверждена",
        confirmedText: "Спасибо! Мы напишем вам одно письмо, когда откроется запись на курс:",
        alreadyConfirmedText: "Этот адрес уже подтверждён. Мы напишем, когда откроется запись на курс:",
        expiredTitle: "Ссылка устарела",
        expiredText: "Ссылки для подтверждения действуют 7 дней. Оставьте адрес ещё раз, и мы пришлём новую.",
        unknownLinkTitle: "Ссылка не найдена",
        unknownLinkText: "Такой ссылки у нас нет: возможно, она скопирована не целиком или адрес уже удалён из списка.",
        signUpAgain: "Оставить адрес",
        unsubscribeTitle: "Отписаться",
        unsubscribeText: "Нажмите кнопку, и мы больше не будем писать на этот адрес о курсе:",
        unsubscribeButton: "Отписаться",
        unsubscribedTitle: "Вы отписаны",
        unsubscribedText: "Мы больше не будем писать вам о курсе:",
        errorTitle: "Что-то пошло не так",
        notFoundTitle: "Страница не найдена",
        notFoundText: "Такой страницы нет.",
        badRequestText: "Запрос не удалось разобрать. Вернитесь на страницу курса и отправьте форму ещё раз.",
        tooManyTitle: "Слишком много попыток",
        tooManyText: "С этого адреса пришло слишком много заявок. Попробуйте позже.",
        tooLargeText: "Запрос слишком большой.",
        serverErrorText: "На сервере произошла ошибка. Попробуйте ещё раз чуть позже.",
        unavailableTitle: "Сервис перегружен",
        unavailableText: "Сейчас сервис не может ничего сохранить, и ваш запрос не сохранён. Попробуйте ещё раз через несколько секунд.",
        invalidEmail: InvalidEmailWords(
            empty: "Введите адрес электронной почты.",
            tooLong: "Адрес слишком длинный: не больше 254 символов.",
            missingAt: "В адресе должен быть ровно один знак @, например name@example.com.",
            badLocalPart: "Часть до @ не может содержать пробелы, управляющие символы или лишние точки.",
            localPartTooLong: "Часть до @ — не длиннее 64 символов.",
            badDomain: "После @ должен быть домен, например example.com.",
            invisibleCharacter: "Адрес содержит невидимый символ: наберите его ещё раз."))

    /// The pages in English.
    static let english = PageWords(
        lang: "en",
        otherLanguage: "Русский",
        otherLang: "ru",
        openQuote: "“",
        closeQuote: "”",
        notifyLead: "The date of the next course is not set yet. Leave your address and we will write when enrolment opens.",
        noSpam: "One message to confirm your address, one when enrolment opens. No spam.",
        privacyLink: "How we handle your data",
        staleForm: "This page was open for a long time and its form has expired. Check your address and send it once more.",
        noSuchCourse: "There is no such course. Open the course's page and leave your address there.",
        chooseCourse: "There are several courses: open the page of the one you want and leave your address there.",
        emailLabel: "Email",
        emailPlaceholder: "name@example.com",
        notifyButton: "Notify me",
        openLead: "Enrolment is open!",
        startsOn: "The course starts on",
        enrolButton: "Enrol",
        coursesTitle: "Courses",
        checkInboxTitle: "Check your inbox",
        checkInboxText:
            "If the address is right, we have sent it a message with a confirmation link. Open it and press “Confirm”: until then we send nothing more.",
        checkInboxHint: "No message? Look in your spam folder, or send the form again tomorrow.",
        backToCourse: "Back to the course",
        wrongAddress: "Wrong address? Enter it again",
        confirmTitle: "Confirm your subscription",
        confirmText: "Press the button and we will write to you when enrolment opens for:",
        confirmButton: "Confirm",
        confirmedTitle: "Subscription confirmed",
        confirmedText: "Thank you! We will send you one message when enrolment opens for:",
        alreadyConfirmedText: "This address is confirmed already. We will write when enrolment opens for:",
        expiredTitle: "This link has expired",
        expiredText: "Confirmation links work for 7 days. Leave your address again and we will send a new one.",
        unknownLinkTitle: "Link not found",
        unknownLinkText: "We have no such link: it may have been copied only in part, or the address was removed from the list.",
        signUpAgain: "Leave your address",
        unsubscribeTitle: "Unsubscribe",
        unsubscribeText: "Press the button and we will not write to this address about the course again:",
        unsubscribeButton: "Unsubscribe",
        unsubscribedTitle: "You are unsubscribed",
        unsubscribedText: "We will not write to you again about:",
        errorTitle: "Something went wrong",
        notFoundTitle: "Page not found",
        notFoundText: "There is no such page.",
        badRequestText: "The request could not be read. Go back to the course page and send the form again.",
        tooManyTitle: "Too many attempts",
        tooManyText: "Too many signups came from your address. Please try again later.",
        tooLargeText: "The request is too large.",
        serverErrorText: "The server failed. Please try again a little later.",
        unavailableTitle: "Service busy",
        unavailableText: "The service cannot save anything right now, and your request was not saved. Please try again in a few seconds.",
        invalidEmail: InvalidEmailWords(
            empty: "Please enter your email address.",
            tooLong: "That address is too long: at most 254 characters.",
            missingAt: "An email address needs exactly one @, as in name@example.com.",
            badLocalPart: "The part before the @ may not contain spaces, control characters or misplaced dots.",
            localPartTooLong: "The part before the @ may have at most 64 characters.",
            badDomain: "The part after the @ must be a domain such as example.com.",
            invisibleCharacter: "The address contains an invisible character; please type it again."))
}
