"""The words of the payment pages in the four languages of the back office (uz, uz_Cyrl, ru,
en). Kept here so the payment pages do not touch the shared catalogs; a word missing here falls
back to the shared catalog."""

from __future__ import annotations

_MOVED = (
    "The cashier desk has moved to this page. The payment sent from the old page was not "
    "taken: enter it again here."
)

TEXTS: dict[str, tuple[str, str, str]] = {  # English -> (uz, uz_Cyrl, ru)
    "Cashier desk": ("Kassa", "Касса", "Касса"),
    "Bank statements": ("Bank ko'chirmalari", "Банк кўчирмалари", "Банковские выписки"),
    "Account number": ("Hisob raqami", "Ҳисоб рақами", "Лицевой счёт"),
    "Amount, so'm": ("Summa, so'm", "Сумма, сўм", "Сумма, сум"),
    "Cash": ("Naqd", "Нақд", "Наличные"),
    "Card": ("Karta", "Карта", "Карта"),
    "Take payment": ("To'lovni qabul qilish", "Тўловни қабул қилиш", "Принять оплату"),
    "Payment accepted": ("To'lov qabul qilindi", "Тўлов қабул қилинди", "Оплата принята"),
    "Print receipt": ("Kvitansiyani chop etish", "Квитанцияни чоп этиш", "Печать квитанции"),
    "Receipt": ("Kvitansiya", "Квитанция", "Квитанция"),
    "Time": ("Vaqt", "Вақт", "Время"),
    "Method": ("To'lov turi", "Тўлов тури", "Способ"),
    "Amount": ("Summa", "Сумма", "Сумма"),
    "Void": ("Bekor qilish", "Бекор қилиш", "Аннулировать"),
    "Voided": ("Bekor qilingan", "Бекор қилинган", "Аннулировано"),
    "Reason": ("Sabab", "Сабаб", "Причина"),
    "Today's shift": ("Bugungi smena", "Бугунги смена", "Смена за сегодня"),
    "Total cash": ("Naqd jami", "Нақд жами", "Итого наличными"),
    "Total card": ("Karta jami", "Карта жами", "Итого картой"),
    "Upload a statement": ("Ko'chirmani yuklash", "Кўчирмани юклаш", "Загрузить выписку"),
    "File (MT940, CSV or 1C)": (
        "Fayl (MT940, CSV yoki 1C)",
        "Файл (MT940, CSV ёки 1C)",
        "Файл (MT940, CSV или 1C)",
    ),
    "Import": ("Import qilish", "Импорт қилиш", "Импортировать"),
    "Imported": ("Import qilindi", "Импорт қилинди", "Импортировано"),
    "matched": ("moslandi", "мосланди", "разнесено"),
    "partly matched": ("qisman", "қисман", "частично"),
    "to review": ("ko'rib chiqish", "кўриб чиқиш", "на проверку"),
    "in suspense": ("aniqlanmagan", "аниқланмаган", "невыясненные"),
    "already imported": ("avval import qilingan", "аввал импорт қилинган", "уже загружено"),
    "Review queue": ("Ko'rib chiqish navbati", "Кўриб чиқиш навбати", "Очередь проверки"),
    "In suspense": ("Aniqlanmagan summalar", "Аниқланмаган суммалар", "Невыясненные суммы"),
    "Payer": ("To'lovchi", "Тўловчи", "Плательщик"),
    "Purpose": ("To'lov maqsadi", "Тўлов мақсади", "Назначение платежа"),
    "Open": ("Qoldiq", "Қолдиқ", "Остаток"),
    "Suggestions": ("Takliflar", "Таклифлар", "Предложения"),
    "Allocate": ("Hisobga o'tkazish", "Ҳисобга ўтказиш", "Разнести"),
    "Match again": ("Qayta moslash", "Қайта мослаш", "Разнести повторно"),
    "Nothing is waiting.": ("Navbat bo'sh.", "Навбат бўш.", "Очередь пуста."),
    "Done": ("Bajarildi", "Бажарилди", "Выполнено"),
    "Balance": ("Balans", "Баланс", "Баланс"),
    "Enter the amount in so'm, for example 125000 or 125000,50.": (
        "Summani so'mda kiriting, masalan 125000 yoki 125000,50.",
        "Суммани сўмда киритинг, масалан 125000 ёки 125000,50.",
        "Введите сумму в сумах, например 125000 или 125000,50.",
    ),
    "The payment was refused; check the account number and the amount.": (
        "To'lov rad etildi; hisob raqami va summani tekshiring.",
        "Тўлов рад этилди; ҳисоб рақами ва суммани текширинг.",
        "Платёж отклонён; проверьте лицевой счёт и сумму.",
    ),
    _MOVED: (
        (
            "Kassa shu sahifaga ko'chdi. Eski sahifadan yuborilgan to'lov qabul qilinmadi: "
            "uni shu yerda qayta kiriting."
        ),
        (
            "Касса шу саҳифага кўчди. Эски саҳифадан юборилган тўлов қабул қилинмади: "
            "уни шу ерда қайта киритинг."
        ),
        (
            "Касса переехала на эту страницу. Платёж, отправленный со старой страницы, "
            "не принят: введите его здесь заново."
        ),
    ),
}

_INDEX = {"uz": 0, "uz_Cyrl": 1, "ru": 2}


def text(lang: str, msg: str) -> str | None:
    """The translation of ``msg``, or None when it is not one of the payment pages' words."""
    row = TEXTS.get(msg)
    if row is None:
        return None
    return msg if lang == "en" else row[_INDEX.get(lang, 0)]
