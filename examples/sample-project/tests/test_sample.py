import unittest

from sample import greet


class GreetTest(unittest.TestCase):
    def test_greet(self):
        self.assertEqual(greet("env"), "hello, env")


if __name__ == "__main__":
    unittest.main()
