"""``scenarios.run.frozen``: what exists before a run is kept out of full garbage
collections while it runs, and nothing the run leaves behind is kept for good."""

import gc
import os
import warnings
import weakref

from lemgrid.scenarios.run.frozen import frozen


class Node:
    """An object in a reference cycle: only the garbage collector frees it."""

    def __init__(self):
        self.me = self


def test_a_block_freezes_what_exists_and_collects_its_own_garbage():
    """Inside: an object from before is frozen (the freeze count grows by at least it);
    a cycle made and dropped inside is freed when the block ends, not frozen by the
    next block; after it, nothing stays frozen (``gc.unfreeze`` releases every object)."""
    before = gc.get_freeze_count()
    old = Node()
    with frozen():
        assert gc.get_freeze_count() >= before + 1
        made = weakref.ref(Node())  # dropped at once: garbage in a cycle
        assert made() is not None
    assert made() is None
    assert gc.get_freeze_count() == 0
    del old


def test_nested_blocks_leave_it_to_the_outermost():
    with frozen():
        inside = gc.get_freeze_count()
        with frozen():
            pass
        assert gc.get_freeze_count() == inside  # the inner one did not unfreeze
    assert gc.get_freeze_count() == 0


def test_a_process_forked_inside_keeps_them_frozen():
    """The child of a fork inside a block (the grid process) leaves the block too, but
    does not unfreeze: its collections must not write to the pages it shares."""
    read, write = os.pipe()
    with frozen(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pytest's threads: the child
        pid = os.fork()  # runs none of their code, it writes one number and exits
    if pid == 0:  # the child: report its freeze count after leaving the block
        os.write(write, str(gc.get_freeze_count()).encode())
        os._exit(0)
    os.close(write)
    child_count = int(os.read(read, 64))
    os.close(read)
    os.waitpid(pid, 0)
    assert child_count > 0
    assert gc.get_freeze_count() == 0
