"""scikit-learn's OpenMP code runs on one thread for small inputs, untouched for large ones."""

from threadpoolctl import threadpool_info

from napari_calcium_avae.analysis._threads import SINGLE_THREAD_BELOW, openmp_threads_for


def _openmp_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "openmp"}


def test_small_inputs_use_one_openmp_thread() -> None:
    import sklearn.manifold  # noqa: F401  (loads scikit-learn's OpenMP runtime)

    outside = _openmp_threads()
    with openmp_threads_for(90):
        assert _openmp_threads() == {1}
    with openmp_threads_for(SINGLE_THREAD_BELOW):
        assert _openmp_threads() == outside
    assert _openmp_threads() == outside
