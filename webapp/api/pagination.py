from django.core.exceptions import ValidationError
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination


class CursorPage(CursorPagination):
    """Cursor pagination: stable under inserts and O(page) on large tables (no OFFSET scans)."""

    page_size = 20
    max_page_size = 100
    page_size_query_param = "page_size"
    ordering = ("-created_at", "-id")

    def paginate_queryset(self, queryset, request, view=None):
        # A forged cursor can carry a position of the wrong type for the ordering field; the
        # query then fails as it is built. That is the client's error, like any bad cursor.
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValueError, TypeError, ValidationError) as exc:
            raise exceptions.ValidationError({"cursor": [self.invalid_cursor_message]}) from exc
