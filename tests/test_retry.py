"""The one backoff rule: retried while retryable and within the deadline or attempts; otherwise the last error."""

import time, pytest
from bn_study.util.retry import retry
def test():
    calls=[]
    def f():
        calls.append(1)
        if len(calls)<3: raise OSError("x")
        return 5
    assert retry(f, retryable=lambda e: True, attempts=5) == 5 and len(calls)==3
    calls.clear()
    with pytest.raises(OSError): retry(f, retryable=lambda e: True, attempts=2)
    calls.clear()
    with pytest.raises(OSError): retry(f, retryable=lambda e: True)
    assert len(calls)==1
    calls.clear()
    with pytest.raises(OSError): retry(f, retryable=lambda e: False, attempts=5)
    calls.clear()
    assert retry(f, retryable=lambda e: True, deadline=time.monotonic()+5) == 5
