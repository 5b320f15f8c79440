"""The snapshot's page conversion (pure): typed pages in one call, odd values coerced."""

from emergency_pipeline.number_pages import NUMBER_SCHEMA, page_table


def test_a_page_keeps_only_its_columns_typed() -> None:
    records = [{"id": "1", "phone_number": "+12025550100", "status": "active",
                "emergency_enabled": True, "emergency_address_id": "9",
                "emergency_status": "active", "tags": ["x"], "connection_id": None},
               {"id": "2", "phone_number": "+12025550101", "status": "active",
                "emergency_enabled": False}]
    table = page_table(records)
    assert table.schema == NUMBER_SCHEMA
    assert table.to_pylist()[1] == {"id": "2", "phone_number": "+12025550101",
                                    "status": "active", "emergency_enabled": False,
                                    "emergency_address_id": None, "emergency_status": None}


def test_values_of_another_type_are_coerced_not_refused() -> None:
    # An API that sends ids as numbers or booleans as text must not fail the snapshot.
    table = page_table([{"id": 17, "emergency_enabled": "true", "emergency_address_id": 5},
                        {"id": 18, "emergency_enabled": "False"}])
    assert table.column("id").to_pylist() == ["17", "18"]
    assert table.column("emergency_enabled").to_pylist() == [True, False]
    assert table.column("emergency_address_id").to_pylist() == ["5", None]


def test_an_empty_page_is_an_empty_table() -> None:
    assert page_table([]).num_rows == 0


def test_a_number_listed_twice_is_kept_once_at_its_first_sighting() -> None:
    # Pages arrive out of order from the concurrent listing; the table keeps listing order.
    import duckdb

    from emergency_pipeline.number_pages import list_numbers_into

    pages = {1: [{"id": "1", "emergency_enabled": True}, {"id": "2", "emergency_enabled": False}],
             2: [{"id": "3", "emergency_enabled": True}, {"id": "2", "emergency_enabled": True}]}

    class Client:
        log = __import__("logging").getLogger("test")

        def each_phone_number_page(self, on_page):
            for number in (2, 1):
                on_page(number, 2, pages[number])
            return 2, 3

    con = duckdb.connect()
    counts = list_numbers_into(Client(), con)
    assert counts == {"numbers": 3, "pages": 2, "listed": 4}
    assert con.execute("SELECT id, emergency_enabled FROM numbers").fetchall() == [
        ("1", True), ("2", False), ("3", True)]
