from rest_framework.pagination import CursorPagination


class CursorPage(CursorPagination):
    """Cursor pagination: stable under inserts and O(page) on large tables (no OFFSET scans)."""

    page_size = 20
    max_page_size = 100
    page_size_query_param = "page_size"
    ordering = ("-created_at", "-id")
