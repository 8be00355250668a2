"""The sales tally's upkeep (ShowSales: kept by triggers, bookings migration 0032; folded here, 0033)."""

from bookings.services.holds import call_function

FOLD_BATCH_SHOWS = 1000


def fold_sales_tally(*, batch_size=FOLD_BATCH_SHOWS):
    """Fold each show's rows of the sales tally (one per database session that sold it) into one, so the sales
    report reads few rows a show; `batch_size` shows a transaction, until none is left. Returns how many shows'
    rows were folded. Beat runs it (settings.CELERY_BEAT_SCHEDULE).

    Each batch is one call of bookings_fold_show_sales, its own transaction: it locks the rows it folds FOR UPDATE
    SKIP LOCKED, so it never waits for a sale in progress (that session's row is folded on a later run) and two
    runs at once share the work; a sale of a show being folded waits for the batch's commit only if it writes a
    row the batch holds. The tally's sums are the same before and after. Nothing on commit.
    """
    folded = 0
    while True:
        (count,) = call_function("bookings_fold_show_sales", batch_size)
        folded += count
        if count < batch_size:
            return folded
